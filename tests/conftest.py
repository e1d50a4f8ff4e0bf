import os
import sys
from pathlib import Path

# tests import their shared fixtures module (ag_fixtures) by name
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
