"""The at-hand motion classes move as preregistered (docs/synthetic_benchmark.md, section 2.2)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ag.synth.plan import VideoPlan
from pipeline.ag.synth.trajectory import VideoMotion, bounded_walk
from pipeline.params import SynthParams

PARAMS = SynthParams()


def _video(script: str, seed: int = 0, pans: bool = False) -> VideoMotion:
    plan = VideoPlan(n_frames=24, scripts=(script, "not_contacting"), class_choices=(0.0, 0.5), pans=pans)
    return VideoMotion(np.random.default_rng(seed), PARAMS, plan, "train")


def _steps(boxes: np.ndarray) -> np.ndarray:
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    return np.diff(centres, axis=0)


def _tracks(video: VideoMotion) -> tuple[np.ndarray, np.ndarray]:
    hand_object = next(name for name, script in video.scripts.items() if script != "not_contacting")
    n = len(video.frame_numbers)
    person = np.array([video.person_box(t) for t in range(n)])
    obj = np.array([video.place(hand_object, t).box for t in range(n)])
    return _steps(person), _steps(obj)


def test_bounded_walk_stays_in_range_reverses_and_pauses():
    rng = np.random.default_rng(0)
    frames = list(range(0, 400, 8))
    walk = bounded_walk(rng, frames, speed=0.5, low=-10.0, high=10.0, pause=0.0)
    assert walk.min() >= -10.0 and walk.max() <= 10.0
    assert np.allclose(np.abs(np.diff(walk))[np.abs(walk[1:]) < 6], 4.0)  # 0.5 px x 8 frames, away from the ends
    assert (np.sign(np.diff(walk)) > 0).any() and (np.sign(np.diff(walk)) < 0).any()
    still = bounded_walk(rng, frames, speed=0.5, low=-10.0, high=10.0, pause=1.0)
    assert np.ptp(still) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_who_moves_differs_between_the_at_hand_classes(seed):
    person, obj = _tracks(_video("touching", seed))
    assert np.abs(person).max() == 0.0 and np.linalg.norm(obj, axis=1).max() <= 2.0 + 1e-9  # partial moves only
    person, obj = _tracks(_video("holding", seed))
    assert np.abs(person).max() == 0.0
    moving = np.linalg.norm(obj, axis=1) > 0
    assert (np.abs(obj[moving, 1]) >= np.abs(obj[moving, 0]) - 1e-9).all()  # within 45 deg of vertical
    person, obj = _tracks(_video("not_contacting_hand", seed))
    assert np.abs(obj).max() == 0.0  # still in the scene
    moving = np.linalg.norm(person, axis=1) > 0
    assert moving.any() and (np.abs(person[moving, 0]) >= np.abs(person[moving, 1]) - 1e-9).all()
    person, obj = _tracks(_video("carrying", seed))
    walking = np.abs(person[:, 0]) > 0
    assert walking.mean() > 0.5
    # the carried object follows the hand: relative steps stay small next to the walk
    assert np.abs(obj[walking, 0] - person[walking, 0]).max() < np.abs(person[walking, 0]).max()


def test_a_pan_moves_every_box_of_a_frame_alike():
    panned, still = _video("touching", 1, pans=True), _video("touching", 1, pans=False)
    travel = np.ptp(panned.camera, axis=0)
    assert np.linalg.norm(travel) > 10.0  # the camera travels
    assert np.linalg.norm(np.ptp(still.camera, axis=0)) < 3.0  # shake only
