"""Echo bundles with chosen input contracts and statistics: drift is judged on the input,
so the model does not matter."""

from __future__ import annotations

from pathlib import Path

from rts.rts_support import Echo
from tilecast.bundle import ContractDraft, create_bundle
from tilecast.bundle.contract import InputSpec, Postprocessing


def echo_bundle(out: Path, *, stats: bytes, dtype: str, value_scaling: str) -> Path:
    """An RGB echo bundle over 0..255 input with these statistics, at ``out``."""
    draft = ContractDraft(
        name="echo",
        version="1",
        input=InputSpec(
            channels=3,
            channel_order="RGB",
            dtype=dtype,
            value_scaling=value_scaling,
            input_range=(0.0, 255.0),
        ),
        postprocessing=Postprocessing(activation="sigmoid", labels=("x",), threshold=0.5),
    )
    create_bundle(Echo(0, scale=1.0), draft, stats_bytes=stats, out=out)
    return out
