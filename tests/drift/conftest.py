"""A float32-input bundle that was "trained" on the demo scenes: the demo statistics, an echo
model (drift is judged on the input, so the model does not matter)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def float_demo_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rts.rts_support import Echo
    from tilecast.bundle import ContractDraft, create_bundle
    from tilecast.bundle.contract import InputSpec, Postprocessing

    draft = ContractDraft(
        name="float-echo",
        version="1",
        input=InputSpec(
            channels=3,
            channel_order="RGB",
            dtype="float32",
            value_scaling="raw",
            input_range=(0.0, 255.0),
        ),
        postprocessing=Postprocessing(activation="sigmoid", labels=("rts",), threshold=0.5),
    )
    out = tmp_path_factory.mktemp("float-demo") / "bundle"
    stats = (REPO / "models" / "rts-demo" / "normalization_stats.json").read_bytes()
    create_bundle(Echo(0, scale=1.0), draft, stats_bytes=stats, out=out)
    return out
