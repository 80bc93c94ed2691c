"""A float32-input bundle "trained" on the demo scenes: the demo statistics, an echo model."""

from __future__ import annotations

from pathlib import Path

import pytest

from drift.drift_support import echo_bundle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def float_demo_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stats = (REPO / "models" / "rts-demo" / "normalization_stats.json").read_bytes()
    out = tmp_path_factory.mktemp("float-demo") / "bundle"
    return echo_bundle(out, stats=stats, dtype="float32", value_scaling="raw")
