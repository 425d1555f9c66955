import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLES = SHARED / "data" / "samples"


@pytest.fixture(scope="session")
def samples_root() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"real sample set not found at {SAMPLES}: the tests expect ../shared beside the project root")
    return SAMPLES


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own SAA_HOME so no cache or weight file leaks between tests."""
    monkeypatch.setenv("SAA_HOME", str(tmp_path_factory.mktemp("saa_home")))
