import pytest
import yaml

from pipeline.params import Params, ParamsError, load_params, parse_params


def test_repository_params_yaml_is_valid_and_matches_defaults():
    loaded = load_params("params.yaml")
    assert loaded.evaluate.constraints == ("with", "semi", "no")
    # every section in the file is commented, key by key
    for line in open("params.yaml"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.startswith("-"):
            assert "#" in line, f"params.yaml line without a comment: {line!r}"


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"motion": {"window_kk": 3}}, "unknown key 'motion.window_kk'"),
        ({"motion": {"window_k": "four"}}, "motion.window_k = 'four'"),
        ({"motion": {"window_k": 0}}, "motion.window_k = 0: Input should be greater than or equal to 1"),
        ({"dataset": {"val_fraction": 1.5}}, "dataset.val_fraction = 1.5"),
        ({"text": {"encoder": "glove"}}, "text.encoder = 'glove': Input should be 'minilm' or 'clip'"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"synth": {"min_frames": 9, "max_frames": 3}}, "min_frames (9) must be <= max_frames (3)"),
        ({"train": {"schedule": "step"}}, "train.schedule = 'step': Input should be 'warmup_cosine' or 'plateau'"),
        ({"train": {"warmup_epoch": 1}}, "unknown key 'train.warmup_epoch'"),
        ({"model": {"loss": {"asm_alignment_form": "sigmoid"}}}, "model.loss.asm_alignment_form = 'sigmoid'"),
        ({"text": {"predicate_mix": 1.5}}, "text.predicate_mix = 1.5"),
    ],
)
def test_bad_params_give_one_line_errors(data, fragment):
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_yaml_bare_no_means_the_no_constraint(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("evaluate:\n  constraints: [with, no]\n")
    assert load_params(path).evaluate.constraints == ("with", "no")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ParamsError, match="top level must be a mapping"):
        load_params(bad)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_params_yaml_holds_every_default_of_params_py_key_by_key():
    """params.yaml is the documented copy of the defaults: same keys, same values."""
    raw = yaml.safe_load(open("params.yaml"))
    defaults = Params().model_dump(mode="json")
    assert sorted(_flatten(raw)) == sorted(_flatten(defaults))
    parsed = _flatten(parse_params(raw).model_dump(mode="json"))
    differing = {key: (parsed[key], value) for key, value in _flatten(defaults).items() if parsed[key] != value}
    assert not differing, f"params.yaml vs params.py defaults (yaml, py): {differing}"


def test_defaults_roundtrip():
    assert parse_params(yaml.safe_load(yaml.safe_dump(Params().model_dump(mode="json")))) == Params()
