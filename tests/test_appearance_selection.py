"""The preregistered appearance selection rule (docs/model_selection.md, section 3)."""

from __future__ import annotations

import pytest

from pipeline.ablation.selection import CANDIDATES, choose, markdown_table, validation_means
from pipeline.ablation.variants import apply_overrides
from pipeline.params import parse_params

NAMES = [c.name for c in CANDIDATES]


def runs(table: dict[str, list[tuple[float, float, float]]]) -> dict[str, dict]:
    """runs.json-like records: per candidate, per seed (motion, R@20, mR@20) of the last epoch."""
    out = {}
    for name, per_seed in table.items():
        for seed, (motion, recall, mean_recall) in enumerate(per_seed):
            curve = [{"motion macro recall": 0.0, "R@20": 0.0, "mR@20": 0.0},  # earlier epochs are not read
                     {"motion macro recall": motion, "R@20": recall, "mR@20": mean_recall}]  # fmt: skip
            out[f"d0/{name}/s{seed}"] = {"variant": name, "seed": seed, "curve": curve}
    return out


def means_of(rows: dict[str, tuple[float, float, float]]) -> dict:
    return validation_means(runs({name: [row, row] for name, row in rows.items()}))


def test_every_candidate_parses_to_its_own_token_and_the_first_is_the_papers():
    tokens = [parse_params(apply_overrides({}, c.overrides)).model for c in CANDIDATES]
    settings = [(m.token_appearance, m.appearance_dropout) for m in tokens]
    assert settings[0] == (("subject_roi", "object_roi", "union"), 0.0)
    assert len(set(settings)) == len(CANDIDATES)


def test_means_read_only_the_last_epoch_and_average_the_seeds():
    means = validation_means(runs({name: [(50.0, 70.0, 60.0), (60.0, 72.0, 62.0)] for name in NAMES}))
    assert means["paper"]["motion macro recall"] == 55.0
    assert means["paper"]["R@20"] == 71.0 and means["paper"]["mR@20"] == 61.0
    assert means["none"]["seeds"] == [0, 1] and means["none"]["per_seed_motion"] == [50.0, 60.0]


def test_the_best_eligible_candidate_wins_and_a_tail_loss_makes_one_ineligible():
    means = means_of({
        "paper": (50.0, 70.0, 60.0), "dropout-0.5": (55.0, 70.0, 60.0), "dropout-0.8": (58.0, 69.5, 59.0),
        "object-only": (64.0, 70.0, 58.5), "none": (75.0, 70.0, 57.9),  # none loses 2.1 mR@20: ineligible
    })  # fmt: skip
    chosen, reason = choose(means)
    assert chosen == "object-only" and "+14.0" in reason
    assert "none" not in reason.split("eligible:")[1]
    assert "**(chosen)**" in markdown_table(means, chosen, reason).splitlines()[5]


def test_a_recall_loss_over_one_point_also_makes_a_candidate_ineligible():
    means = means_of({name: (50.0, 70.0, 60.0) for name in NAMES} | {"dropout-0.5": (70.0, 68.9, 60.0)})
    assert choose(means)[0] == "paper"


def test_within_the_tie_margin_the_least_departure_wins():
    means = means_of({
        "paper": (50.0, 70.0, 60.0), "dropout-0.5": (50.5, 70.0, 60.0), "dropout-0.8": (59.2, 70.0, 60.0),
        "object-only": (60.0, 70.0, 60.0), "none": (58.0, 70.0, 60.0),
    })  # fmt: skip
    assert choose(means)[0] == "dropout-0.8"


def test_a_gain_under_three_points_keeps_the_papers_token():
    means = means_of({name: (50.0, 70.0, 60.0) for name in NAMES} | {"none": (52.9, 70.0, 60.0)})
    chosen, reason = choose(means)
    assert chosen == "paper" and "+2.9" in reason


def test_the_rule_refuses_unequal_seeds_or_a_missing_candidate():
    table = {name: [(50.0, 70.0, 60.0)] * 2 for name in NAMES}
    with pytest.raises(ValueError, match="same seeds"):
        choose(validation_means(runs({**table, "none": [(50.0, 70.0, 60.0)]})))
    del table["none"]
    with pytest.raises(ValueError, match="same seeds"):
        choose(validation_means(runs(table)))


def test_means_over_several_data_seeds_weigh_every_run_and_need_the_same_runs():
    records = {}
    for data, motion in (("d0", 40.0), ("d1", 60.0)):
        for key, record in runs({name: [(motion, 70.0, 60.0)] for name in NAMES}).items():
            records[key.replace("d0/", f"{data}/")] = {**record, "data": data}
    means = validation_means(records)
    assert means["paper"]["motion macro recall"] == 50.0 and means["paper"]["runs"] == ["d0/s0", "d1/s0"]
    del records["d1/none/s0"]
    with pytest.raises(ValueError, match="same seeds"):
        choose(validation_means(records))
