"""The install is pinned: every dependency of pyproject.toml has an exact version in constraints.txt.

An unpinned fresh install resolves whatever is newest that day, and the
committed outputs (detector, text embeddings, every metric) stop being the
ones a clone reproduces.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the dev extra installs tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# setup.sh installs torch itself, pinned to the CPU build of one version.
PINNED_BY_SETUP = {"torch"}


def constraint_pins(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not (sep and version) or " " in line:
            raise ValueError(f"constraints.txt:{number}: not name==version: {raw!r}")
        key = canonicalize_name(name)
        if key in pins:
            raise ValueError(f"constraints.txt:{number}: {name} pinned twice")
        pins[key] = version
    return pins


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    return [Requirement(line) for line in lines]


def test_every_dependency_has_an_exact_pin_that_satisfies_it():
    pins = constraint_pins((ROOT / "constraints.txt").read_text())
    for requirement in declared_requirements():
        name = canonicalize_name(requirement.name)
        if name in PINNED_BY_SETUP or (requirement.marker and not requirement.marker.evaluate()):
            continue
        assert name in pins, f"{requirement.name} (pyproject.toml) has no pin in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, outside pyproject.toml's {requirement.specifier}"
        )


def test_setup_installs_through_the_constraints_and_reinstalls_when_they_change():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in setup
    assert "cat pyproject.toml scripts/setup.sh constraints.txt" in setup


def test_constraint_parser_rejects_loose_and_duplicate_lines():
    assert constraint_pins("# c\nnumpy==2.4.6\n\nPyYAML==6.0.3  # yaml\n") == {"numpy": "2.4.6", "pyyaml": "6.0.3"}
    with pytest.raises(ValueError, match="not name==version"):
        constraint_pins("numpy>=2\n")
    with pytest.raises(ValueError, match="pinned twice"):
        constraint_pins("numpy==2.4.6\nNumPy==2.4.5\n")
