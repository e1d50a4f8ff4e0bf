"""Visibility probe of the synthetic frames: every annotated object can be seen.

An object is painted, then partly hidden by what is painted after it (the
person, the objects in front). The probe renders each paint layer of a frame
into its own mask and measures, per visible annotated object, the fraction of
its box that still shows its own pixels. Without the straps of a bag worn on
the back that fraction was 0.02 (seed 0, 51 boxes): an annotated box no
detector can find.
"""

from collections import defaultdict

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.ag.synth import planned_videos, scripted_frames
from pipeline.params import SynthParams


def _short(videos: int) -> SynthParams:
    # visibility does not depend on a video's length: short videos keep the mask painting cheap
    return SynthParams(videos=videos, min_frames=3, max_frames=8)

_UNPAINTED = (1, 2, 3)  # a colour no painter uses


def _layer_mask(paint, size) -> np.ndarray:
    canvas = Image.new("RGB", size, _UNPAINTED)
    paint(ImageDraw.Draw(canvas))
    return (np.asarray(canvas) != _UNPAINTED).any(axis=-1)


def painted_frames(params: SynthParams):
    """Per frame: the paint layers' owners, one mask per layer, and which layer owns each pixel."""
    size = (params.width, params.height)
    for index, split, plan in planned_videos(params):
        for frame, _, _ in scripted_frames(params, index, split, plan):
            owners, masks = [], []
            # who owns each pixel after painting: later layers take it over
            owner_of = np.full(size[::-1], -1)
            for owner, paint in frame.layers:
                owners.append(owner)
                masks.append(_layer_mask(paint, size))
                owner_of[masks[-1]] = len(owners) - 1
            yield owners, masks, owner_of


def _objects(owners):
    """Each annotated object of a frame once, with the positions of its layers."""
    objects = {id(o): o for o in owners if o is not None}.values()
    return [(item, [p for p, o in enumerate(owners) if o is item]) for item in objects]


def _kind(item) -> tuple[str, str]:
    return item.name, item.contacting[0]


def visible_fractions(params: SynthParams) -> dict[tuple[str, str], list[float]]:
    """(class, first contacting label) -> fraction of the box showing the object, per frame."""
    fractions = defaultdict(list)
    for owners, _, owner_of in painted_frames(params):
        for item, mine in _objects(owners):
            shown = np.isin(owner_of, mine).sum()
            x1, y1, x2, y2 = item.box
            area = max(1.0, (x2 - x1) * (y2 - y1))
            fractions[_kind(item)].append(float(shown) / area)
    return fractions


def hidden_by_objects(params: SynthParams, share: float) -> set[tuple[tuple[str, str], tuple[str, str]]]:
    """(hidden kind, hiding kind) pairs where one object covers more than ``share`` of another's paint."""
    pairs = set()
    for owners, masks, owner_of in painted_frames(params):
        objects = _objects(owners)
        for item, mine in objects:
            painted = np.any([masks[p] for p in mine], axis=0)
            covered_by = owner_of[painted]
            for other, theirs in objects:
                if other is not item and np.isin(covered_by, theirs).sum() > share * painted.sum():
                    pairs.add((_kind(item), _kind(other)))
    return pairs


@pytest.mark.slow
def test_every_kind_of_annotated_object_shows_at_least_a_tenth_of_its_box():
    fractions = visible_fractions(_short(60))
    medians = {key: float(np.median(values)) for key, values in fractions.items()}
    hidden = {key: round(m, 3) for key, m in medians.items() if m < 0.1}
    assert not hidden, f"(class, contacting label) whose median visible box fraction is < 0.1: {hidden}"
    assert medians[("bag", "have_it_on_the_back")] > 0.2  # the straps


def test_straps_make_a_bag_on_the_back_visible():
    fractions = visible_fractions(_short(40))
    worn = fractions[("bag", "have_it_on_the_back")]
    assert worn, "no bag worn on the back in 40 videos: pick a size that holds one"
    assert min(worn) > 0.2


# An object may hide most of another only where a real scene would: a
# blanket over the lap of a seated person covers the chair, clothes cover
# the body of a bag worn on the back (its straps stay on top).
NATURAL_COVER = {
    (("chair", "sitting_on"), ("blanket", "covered_by")),
    (("chair", "sitting_on"), ("clothes", "covered_by")),
    (("chair", "sitting_on"), ("towel", "covered_by")),
    (("bag", "have_it_on_the_back"), ("clothes", "wearing")),
}


@pytest.mark.slow
def test_no_two_objects_share_one_spot_on_the_person():
    # 200 videos held 14 frames with a sofa over the bed or chair the person
    # was lying or sitting on before SHARED_SPOTS (one object per spot).
    # Background furniture may stand in front of other background furniture (a cabinet before
    # a fridge): a real occlusion away from the person, which this test is not about.
    unnatural = {
        pair for pair in hidden_by_objects(_short(200), share=0.5) - NATURAL_COVER
        if not (pair[0][1] == pair[1][1] == "not_contacting")
    }
    assert not unnatural, f"(hidden, hiding) object kinds, more than half covered: {sorted(unnatural)}"


@pytest.mark.slow
def test_the_floor_never_covers_what_stands_on_it():
    # Painted in script order, the floor strip covered part of a chair or
    # sofa (up to 17% of its paint) in 25 frames of the 200 default videos.
    over = {pair for pair in hidden_by_objects(_short(200), share=0.0) if pair[1][0] == "floor"}
    assert not over, f"objects the floor is painted over: {sorted(over)}"
