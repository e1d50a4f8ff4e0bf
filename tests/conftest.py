import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# tests import their shared fixtures module (ag_fixtures) by name
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Example counts of the property tests that do not fix their own (the fuzz
# suite in tests/fuzz/). HYPOTHESIS_PROFILE picks one: `ci` (the default) is
# derandomised so a CI failure reproduces; `thorough` explores far more and
# keeps a local example database; `dev` is a quick smoke run.
_FUZZ = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("ci", max_examples=150, derandomize=True, database=None, **_FUZZ)
settings.register_profile("thorough", max_examples=3000, **_FUZZ)
settings.register_profile("dev", max_examples=30, **_FUZZ)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
