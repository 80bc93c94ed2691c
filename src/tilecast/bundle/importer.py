"""Bundling a model made anywhere: an ONNX graph, a contract draft and statistics.

``import_onnx`` is ``bundle create`` for a model tilecast did not make: it reads the graph's
input layout, probes its class count, checks the training side's golden pairs (or makes its
own, ``source: bundle``), stamps the contract digest and the declared baked steps into the
graph's metadata and writes the bundle through the same verify-then-move path as create.

For an imported graph ``where: model`` is a claim about the graph (a Rescaling or
Normalization layer inside it), not something tilecast adds; so a draft that does not list its
preprocessing runs every step on the host, and only golden pairs from the training side can
confirm the claim.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import ValidationError

from tilecast.bundle.contract import (
    Alignment,
    Contract,
    GoldenSpec,
    ModelSpec,
    StatsSpec,
    default_steps,
)
from tilecast.bundle.create import ContractDraft, read_draft, write_bundle
from tilecast.bundle.frozen import InferenceModel
from tilecast.bundle.golden import (
    GOLDEN_DIR,
    GoldenPair,
    check_pair,
    make_pairs,
    synthetic_inputs,
)
from tilecast.bundle.load import CONTRACT_NAME, Bundle
from tilecast.bundle.onnx_format import (
    LAYOUTS,
    MODEL_FILE,
    GraphSignature,
    Layout,
    graph_signature,
    infer_layout,
    open_session,
    parse_model,
    stamp,
    wrap_session,
)
from tilecast.bundle.stats import NormalizationStats, md5_hex, parse_stats
from tilecast.errors import ContractError, GoldenMismatchError
from tilecast.io import storage

LayoutChoice = Literal["auto", "NCHW", "NHWC"]

_SCALING_RANGES = {"raw": "values as they are", "unit": "[0, 1]", "symmetric": "[-1, 1]"}


def resolve_layout(
    sig: GraphSignature, choice: LayoutChoice, *, channels: int, where: str
) -> Layout:
    """The declared layout, or the one the graph's input shape shows; refuse a contradiction."""
    seen = infer_layout(sig.input_shape, channels=channels)
    if choice == "auto":
        if seen is None:
            raise ContractError(
                f"{where}: cannot tell the layout from the input {sig.input_name!r} "
                f"{list(sig.input_shape)} with {channels} channel(s); pass --layout "
                f"{' or '.join(LAYOUTS)}"
            )
        return seen
    if seen is not None and seen != choice:
        raise ContractError(
            f"{where}: --layout {choice} given, but the graph's input {sig.input_name!r} "
            f"{list(sig.input_shape)} is {seen} for {channels} channel(s)"
        )
    return choice


def probe_classes(
    session: object,
    sig: GraphSignature,
    *,
    layout: Layout,
    channels: int,
    alignment: int,
    task: str,
    where: str,
) -> int:
    """Run the graph once on zeros of twice the alignment and read the class count off."""
    side = 2 * alignment
    shape = (1, channels, side, side) if layout == "NCHW" else (1, side, side, channels)
    try:
        out = session.run(  # type: ignore[attr-defined]
            [sig.output_name], {sig.input_name: np.zeros(shape, np.float32)}
        )[0]
    except Exception as exc:  # onnxruntime's own types
        raise ContractError(
            f"{where}: the graph does not run on a {shape} {layout} input of zeros "
            f"(alignment_multiple {alignment}): {exc}"
        ) from exc
    if task != "segmentation":
        return int(out.shape[-1])
    spatial = tuple(out.shape[2:]) if layout == "NCHW" else tuple(out.shape[1:3])
    if out.ndim != 4 or spatial != (side, side):
        raise ContractError(
            f"{where}: a segmentation graph must keep height and width; a {shape} {layout} "
            f"input gave {tuple(out.shape)} (is the layout {layout} right? is "
            f"alignment_multiple {alignment} the multiple the graph needs?)"
        )
    return int(out.shape[1] if layout == "NCHW" else out.shape[3])


def make_import_contract(
    draft: ContractDraft,
    *,
    stats_bytes: bytes,
    stats: NormalizationStats,
    layout: Layout,
    classes: int,
    golden_files: Sequence[str],
    golden_source: Literal["training", "bundle"],
) -> Contract:
    assert draft.alignment_multiple is not None
    try:
        return Contract(
            name=draft.name,
            version=draft.version,
            task=draft.task,
            input=draft.input,
            sentinels=draft.sentinels,
            preprocessing=draft.preprocessing,
            stats=StatsSpec(md5=md5_hex(stats_bytes), dataset_version=stats.dataset_version),
            alignment=Alignment(multiple=draft.alignment_multiple, pad_mode=draft.pad_mode),
            postprocessing=draft.postprocessing,
            model=ModelSpec(
                format="onnx", file=MODEL_FILE, params={"layout": layout}, classes=classes
            ),
            golden=GoldenSpec(
                atol=draft.golden_atol, source=golden_source, files=tuple(golden_files)
            ),
        )
    except ValidationError as exc:
        raise ContractError(f"invalid contract: {exc}") from exc


def read_golden_dir(uri: str | os.PathLike[str], *, default_order: str) -> list[GoldenPair]:
    """The ``*.npz`` pairs directly in ``uri`` (input (C, H, W) raw pixels, output (K, H, W))."""
    root = os.fspath(uri).rstrip("/")
    names = [n for n in storage.list_files(root) if n.endswith(".npz") and "/" not in n]
    if not names:
        raise ContractError(f"{root}: no golden pairs (*.npz) found")
    return [
        GoldenPair.from_bytes(
            name, storage.read_bytes(f"{root}/{name}"), default_order=default_order
        )
        for name in names
    ]


def _reproduces(
    pairs: Sequence[GoldenPair],
    contract: Contract,
    stats: NormalizationStats,
    model: InferenceModel,
) -> float | None:
    try:
        return max(
            check_pair(p, contract=contract, stats=stats, model=model, where="") for p in pairs
        )
    except GoldenMismatchError:
        return None


def diagnose_scaling(
    pairs: Sequence[GoldenPair],
    contract: Contract,
    stats: NormalizationStats,
    model: InferenceModel,
) -> str:
    """When the host scales values and another scaling reproduces every pair, say which."""
    step = contract.step("scale_values")
    if step is None or step.where != "host":
        return ""
    declared = contract.input.value_scaling
    for scaling in ("raw", "unit", "symmetric"):
        if scaling == declared:
            continue
        trial = contract.model_copy(
            update={"input": contract.input.model_copy(update={"value_scaling": scaling})}
        )
        worst = _reproduces(pairs, trial, stats, model)
        if worst is not None:
            lo, hi = contract.input.input_range
            return (
                f". The draft declares value_scaling {declared!r} ({_SCALING_RANGES[declared]} "
                f"from [{lo:g}, {hi:g}]), but the model was trained on {scaling!r} "
                f"({_SCALING_RANGES[scaling]}): with {scaling!r} every pair is reproduced "
                f"(max error {worst:.2g}). Set value_scaling: {scaling} in the draft"
            )
    return ""


def import_onnx(
    model: str | os.PathLike[str],
    *,
    draft: str | os.PathLike[str],
    stats: str | os.PathLike[str],
    out: str | os.PathLike[str],
    golden: str | os.PathLike[str] | None = None,
    layout: LayoutChoice = "auto",
    overwrite: bool = False,
) -> Bundle:
    """Bundle an ONNX graph made anywhere with a contract draft (YAML or JSON) and statistics.

    Golden pairs in ``golden`` (``*.npz``, made by the training side's own predict) must be
    reproduced by the serving path before anything is written; without them the bundle makes
    its own (``source: bundle``).
    """
    where = os.fspath(model)
    spec = read_draft(storage.read_bytes(draft), where=os.fspath(draft))
    if "preprocessing" not in spec.model_fields_set:  # nothing is in the graph unless declared
        spec = spec.model_copy(update={"preprocessing": default_steps(baked=())})
    if spec.alignment_multiple is None:
        raise ContractError(
            f"{os.fspath(draft)}: an ONNX graph does not say which multiple its height and "
            "width must be: set alignment_multiple (2 ** the number of stride-2 stages, "
            "1 if it takes any size)"
        )
    data = storage.read_bytes(model)
    proto = parse_model(data, where=where)
    stats_bytes = storage.read_bytes(stats)
    stats_obj = parse_stats(
        stats_bytes,
        file=os.fspath(stats),
        expected_md5=None,
        expected_dataset_version=None,
        channels=spec.input.channels,
    )
    session = open_session(data, where=where)
    sig = graph_signature(session, where=where)
    chosen = resolve_layout(sig, layout, channels=spec.input.channels, where=where)
    classes = probe_classes(
        session,
        sig,
        layout=chosen,
        channels=spec.input.channels,
        alignment=spec.alignment_multiple,
        task=spec.task,
        where=where,
    )
    pairs = (
        [] if golden is None else read_golden_dir(golden, default_order=spec.input.channel_order)
    )
    contract = make_import_contract(
        spec,
        stats_bytes=stats_bytes,
        stats=stats_obj,
        layout=chosen,
        classes=classes,
        golden_files=[p.name for p in pairs] or [n for n, _, _ in synthetic_inputs(spec)],
        golden_source="training" if pairs else "bundle",
    )
    wrapped = wrap_session(session, contract, layout=chosen, where=where)
    for pair in pairs:
        try:
            check_pair(
                pair, contract=contract, stats=stats_obj, model=wrapped, where="training golden"
            )
        except GoldenMismatchError as exc:
            hint = diagnose_scaling(pairs, contract, stats_obj, wrapped)
            raise GoldenMismatchError(f"{exc}{hint}") from exc
    if not pairs:
        pairs = make_pairs(contract, stats=stats_obj, model=wrapped)
    contents = {
        CONTRACT_NAME: (contract.model_dump_json(indent=2) + "\n").encode(),
        contract.stats.file: stats_bytes,
        MODEL_FILE: stamp(proto, contract, where=where),
        **{f"{GOLDEN_DIR}/{p.name}": p.to_bytes() for p in pairs},
    }
    return write_bundle(contents, out=out, overwrite=overwrite)
