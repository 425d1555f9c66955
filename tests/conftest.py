import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
#: the real MVTec AD / MTD samples: $SAA_SAMPLES, else ../shared/data/samples beside the project
SAMPLES = Path(os.environ["SAA_SAMPLES"]).expanduser() if os.environ.get("SAA_SAMPLES") else \
    ROOT.parent / "shared" / "data" / "samples"
SAMPLES_MISSING = "real samples not found: set SAA_SAMPLES=DIR or place them at ../shared/data/samples"
_REPORT: list[str] = []


@pytest.fixture(scope="session")
def samples_root() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(SAMPLES_MISSING)
    return SAMPLES


@pytest.fixture(scope="session")
def browser_report() -> list[str]:
    """Lines a test wants shown in the terminal summary (figures such as the browser test's latency)."""
    return _REPORT


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.section("measured")
        for line in _REPORT:
            terminalreporter.write_line(line)
    skipped = terminalreporter.stats.get("skipped", [])
    if any(SAMPLES_MISSING in str(getattr(r, "longrepr", "")) for r in skipped):
        terminalreporter.write_line(f"NOTE: {SAMPLES_MISSING} (the tests that need them were skipped)")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own SAA_HOME so no cache or weight file leaks between tests."""
    monkeypatch.setenv("SAA_HOME", str(tmp_path_factory.mktemp("saa_home")))


@pytest.fixture
def hand_runs():
    """``hand_runs({category: labels})``: one ``saa_plus`` run per category of random (N, 8, 8) maps, every anomalous
    image's mask a 3 x 3 square, measured (metrics and the reason of each undefined one)."""
    import numpy as np

    from saa_lib.engine.evaluate import CategoryRun

    def make(labels_by_cat: dict) -> list:
        rng = np.random.default_rng(0)
        runs = []
        for cat, labels in labels_by_cat.items():
            labels = np.array(labels)
            masks = np.zeros((len(labels), 8, 8), bool)
            masks[labels == 1, 2:5, 2:5] = True
            maps = rng.random(masks.shape).astype(np.float32)
            runs.append(CategoryRun.measured("saa_plus", cat, maps, masks, labels,
                                             [f"{cat}/{i}" for i in range(len(labels))], region_metrics=False))
        return runs

    return make
