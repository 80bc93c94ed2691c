"""Making bundles: from the training side's plain layout, or from a Python model and a draft.

A bundle is assembled in memory, written into a temporary sibling directory, loaded back with
every check, and only then moved into place. Derived values (the statistics hash, the
alignment, the model spec, the golden list) are computed here, never typed by hand.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

import tilecast
from tilecast.bundle import smp_config
from tilecast.bundle.checkpoints import load_weights, read_checkpoint
from tilecast.bundle.classification import parse_resize
from tilecast.bundle.contract import (
    Alignment,
    Contract,
    GoldenSpec,
    InputSpec,
    ModelSpec,
    PadMode,
    Postprocessing,
    SentinelSpec,
    StatsSpec,
    Step,
    default_steps,
)
from tilecast.bundle.formats import (
    LoadContext,
    assemble,
    export_program,
)
from tilecast.bundle.frozen import InferenceModel
from tilecast.bundle.golden import (
    GOLDEN_DIR,
    GoldenPair,
    check_pair,
    make_pairs,
    synthetic_inputs,
)
from tilecast.bundle.load import CONTRACT_NAME, TRAINING_LAYOUT, Bundle, load_bundle
from tilecast.bundle.manifest import MANIFEST_NAME, build_manifest
from tilecast.bundle.stats import md5_hex, parse_stats
from tilecast.errors import BundleError, ContractError
from tilecast.io import storage

log = logging.getLogger(__name__)

ModelFormat = Literal["export", "state_dict", "onnx"]
MODEL_FILES: dict[str, str] = {
    "export": "model.pt2",
    "state_dict": "best_model.pth",
    "onnx": "model.onnx",
}
DEFAULT_BAKED = ("scale_values", "normalize")


class ContractDraft(BaseModel):
    """A contract without its derived parts: what a person writes for ``bundle create``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    task: Literal["segmentation", "classification"] = "segmentation"
    input: InputSpec
    sentinels: SentinelSpec = SentinelSpec()
    preprocessing: tuple[Step, ...] = default_steps(baked=DEFAULT_BAKED)
    pad_mode: PadMode = "reflect"
    postprocessing: Postprocessing
    golden_atol: float = Field(default=1e-4, gt=0)
    alignment_multiple: int | None = Field(
        default=None, ge=1, description="only for models without an `alignment` attribute"
    )


def producer(**extra: str) -> dict[str, str]:
    return {
        "name": "tilecast",
        "version": tilecast.__version__,
        "torch": torch.__version__,
        **extra,
    }


def _derive_alignment(net: nn.Module, draft: ContractDraft) -> int:
    derived = getattr(net, "alignment", None)
    if derived is not None:
        if draft.alignment_multiple not in (None, derived):
            raise ContractError(
                f"alignment_multiple is {draft.alignment_multiple} but the architecture "
                f"needs multiples of {derived}; leave it out, it is derived"
            )
        return int(derived)
    if draft.alignment_multiple is None:
        raise ContractError("the model has no `alignment` attribute: set alignment_multiple")
    return draft.alignment_multiple


def _model_side(steps: Sequence[Step], multiple: int, *, default: int) -> tuple[int, int]:
    """(height, width) of a probe input: a classifier's resize output padded to the multiple,
    else ``default`` x ``default``."""
    resize = next((s for s in steps if s.op == "resize_image"), None)
    if resize is None:
        return default, default
    try:
        h, w = parse_resize(resize.params).output_hw
    except ValueError as exc:
        raise ContractError(f"invalid contract: {exc}") from None
    return -(-h // multiple) * multiple, -(-w // multiple) * multiple


def _probe_classes(net: nn.Module, draft: ContractDraft, alignment: int) -> int:
    h, w = _model_side(draft.preprocessing, alignment, default=alignment)
    with torch.no_grad():
        out = net(torch.zeros(1, draft.input.channels, h, w))
    return int(out.shape[1])


def make_contract(
    net: nn.Module,
    draft: ContractDraft,
    *,
    stats_bytes: bytes,
    model_format: ModelFormat,
    architecture: str | None,
    golden_files: Sequence[str],
    golden_source: Literal["training", "bundle"],
    params: Mapping[str, Any] | None = None,
) -> Contract:
    """The contract for ``net``; ``params`` are the architecture's parameters (default: the
    net's ``config``, as tilecast's architectures keep it)."""
    if params is None:
        params = getattr(net, "config", {})
    alignment = _derive_alignment(net, draft)
    stats = parse_stats(
        stats_bytes,
        file="normalization_stats.json",
        expected_md5=None,
        expected_dataset_version=None,
        channels=draft.input.channels,
    )
    try:
        return Contract(
            name=draft.name,
            version=draft.version,
            task=draft.task,
            input=draft.input,
            sentinels=draft.sentinels,
            preprocessing=draft.preprocessing,
            stats=StatsSpec(md5=md5_hex(stats_bytes), dataset_version=stats.dataset_version),
            alignment=Alignment(multiple=alignment, pad_mode=draft.pad_mode),
            postprocessing=draft.postprocessing,
            model=ModelSpec(
                format=model_format,
                file=MODEL_FILES[model_format],
                architecture=architecture,
                params=dict(params) if architecture else {},
                classes=_probe_classes(net, draft, alignment),
            ),
            golden=GoldenSpec(
                atol=draft.golden_atol, source=golden_source, files=tuple(golden_files)
            ),
        )
    except ValidationError as exc:
        raise ContractError(f"invalid contract: {exc}") from exc


def create_bundle(
    net: nn.Module,
    draft: ContractDraft,
    *,
    stats_bytes: bytes,
    out: str | os.PathLike[str],
    model_format: ModelFormat = "export",
    architecture: str | None = None,
    training_golden: Sequence[GoldenPair] = (),
    overwrite: bool = False,
    params: Mapping[str, Any] | None = None,
    built_by: str | None = None,
) -> Bundle:
    """Write a verified bundle for ``net`` and return it loaded back from ``out``.

    With ``training_golden`` pairs (made by the training code), the serving path must reproduce
    them before anything is written: train/serve skew stops the bundle from being created.
    ``params`` are the registered architecture's parameters when ``net`` does not keep them as
    ``net.config`` (a network built by another library); ``built_by`` names that library in
    the manifest's producer record.
    """
    if model_format == "state_dict" and not architecture:
        raise ContractError("a state_dict bundle needs a registered architecture name")
    net = net.eval()
    golden_names = [p.name for p in training_golden] or [n for n, _, _ in synthetic_inputs(draft)]
    contract = make_contract(
        net,
        draft,
        stats_bytes=stats_bytes,
        model_format=model_format,
        architecture=architecture,
        golden_files=golden_names,
        golden_source="training" if training_golden else "bundle",
        params=params,
    )
    stats = parse_stats(
        stats_bytes,
        file="normalization_stats.json",
        expected_md5=contract.stats.md5,
        expected_dataset_version=None,
        channels=contract.input.channels,
    )
    ctx = LoadContext(contract=contract, stats=stats, where="(model being bundled)")
    model = InferenceModel(assemble(net, ctx), source=ctx.where)
    pairs = list(training_golden)
    for pair in pairs:
        check_pair(pair, contract=contract, stats=stats, model=model, where="training golden")
    if not pairs:
        pairs = make_pairs(contract, stats=stats, model=model)
    if model_format == "state_dict":
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
        model_bytes = buf.getvalue()
    else:
        m = contract.alignment.multiple
        h, w = _model_side(contract.preprocessing, m, default=2 * m)
        example = torch.zeros(2, contract.input.channels, h, w)
        if model_format == "onnx":
            from tilecast.bundle.onnx_format import export_onnx

            model_bytes = export_onnx(assemble(net, ctx), contract=contract, example=example)
        else:
            model_bytes = export_program(assemble(net, ctx), contract=contract, example=example)
    contents = {
        CONTRACT_NAME: (contract.model_dump_json(indent=2) + "\n").encode(),
        contract.stats.file: stats_bytes,
        contract.model.file: model_bytes,
        **{f"{GOLDEN_DIR}/{p.name}": p.to_bytes() for p in pairs},
    }
    extra = {"model_built_by": built_by} if built_by else {}
    return write_bundle(contents, out=out, overwrite=overwrite, producer_extra=extra)


def write_bundle(
    contents: dict[str, bytes],
    *,
    out: str | os.PathLike[str],
    overwrite: bool,
    producer_extra: Mapping[str, str] | None = None,
) -> Bundle:
    """Write files plus manifest to a temporary sibling, verify it by loading, move into place."""
    if not storage.is_local(out):
        raise BundleError(
            f"{os.fspath(out)}: bundles are created locally; upload the directory after"
        )
    final = storage.local_path(out)
    if final.exists() and any(final.iterdir()) and not overwrite:
        raise BundleError(f"{final}: exists and is not empty; pass overwrite to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(contents, producer=producer(**(producer_extra or {})))
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is for sharing
    try:
        for name, data in {**contents, MANIFEST_NAME: manifest.to_json().encode()}.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        load_bundle(tmp)  # every check a user's load will make
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(final)


# -- the training side's plain layout ------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class TrainingArchitecture(_Loose):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingInput(_Loose):
    channel_order: str
    dtype: Literal["uint8", "uint16", "int16", "float32"]
    value_scaling: Literal["raw", "unit", "symmetric"]
    nodata_fill: Literal["mean", "zero", "constant"] = "mean"
    input_range: tuple[float, float]
    sentinels: SentinelSpec = SentinelSpec()  # pixel values that mean "no measurement"
    # a classifier's resize policy, as the contract's resize_image step takes it
    resize: dict[str, Any] | None = None


class TrainingPost(_Loose):
    activation: Literal["sigmoid", "softmax", "none"]
    labels: tuple[str, ...]
    threshold: float = Field(ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1)  # classification only
    calibrated_on: str | None = Field(default=None, min_length=1)  # classification only


class TrainingConfig(_Loose):
    """The parts of the training team's ``config.yaml`` a bundle needs; other keys are ignored.

    ``architecture`` is a registered tilecast architecture (``{name, params}``), or an smp model
    in smp's own terms, which :func:`read_training_config` turns into one
    (:mod:`tilecast.bundle.smp_config`).
    """

    task: Literal["segmentation", "classification"] = "segmentation"
    model_name: str
    model_version: str
    architecture: TrainingArchitecture
    input: TrainingInput
    postprocessing: TrainingPost


def channel_count(channel_order: str) -> int:
    """The number of input channels a channel order names (``L`` and ``GRAY`` are one)."""
    return 1 if channel_order in ("L", "GRAY") else len(channel_order)


def read_training_config(data: bytes, *, where: str) -> TrainingConfig:
    """Parse ``config.yaml``; an smp model description becomes a registered architecture."""
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ContractError(f"{where}: not a usable training config: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ContractError(
            f"{where}: not a usable training config: expected a mapping, found {type(raw).__name__}"
        )
    section = raw.get("input")
    order = section.get("channel_order") if isinstance(section, Mapping) else None
    channels = channel_count(order) if isinstance(order, str) else None
    if raw.get("task") == "classification":
        _check_classification_config(raw, where=where)
    elif isinstance(section, Mapping) and section.get("resize") is not None:
        raise ContractError(
            f"{where}: input.resize is for classification models (task: classification); "
            "a segmentation model is tiled, not resized"
        )
    described = smp_config.describe(raw, channels=channels, where=where)
    if described is not None:
        raw = {**raw, "architecture": described}
    try:
        return TrainingConfig.model_validate(raw)
    except ValidationError as exc:
        raise ContractError(f"{where}: not a usable training config: {exc}") from exc


def _check_classification_config(raw: Mapping[str, Any], *, where: str) -> None:
    """A classifier's config names its labels and resize policy in the training team's terms
    (the contract checks the rest: activation, calibration, label count against the model)."""
    post = raw.get("postprocessing")
    labels = post.get("labels") if isinstance(post, Mapping) else None
    if not labels:
        raise ContractError(
            f"{where}: a classification model needs its label map: postprocessing.labels must "
            f"name each of the model's outputs in order, {labels!r} is given"
        )
    section = raw.get("input")
    resize = section.get("resize") if isinstance(section, Mapping) else None
    if resize is None:
        raise ContractError(
            f"{where}: a classification model needs the resize policy it was trained with: "
            "input.resize {policy: fixed, size: [h, w], interpolation, antialias} or "
            "{policy: shorter_side_crop, shorter_side, crop: [h, w], interpolation, antialias}, "
            "none is given"
        )
    if not isinstance(resize, Mapping):
        raise ContractError(f"{where}: input.resize must be a mapping, {resize!r} is given")
    try:
        parse_resize(dict(resize))
    except ValueError as exc:
        raise ContractError(f"{where}: input.resize: {exc}") from None


def _training_steps(spec: TrainingInput, baked: Sequence[str]) -> tuple[Step, ...]:
    """The standard steps, with a classifier's resize after the fill (the contract's order)."""
    steps = default_steps(baked=tuple(baked), fill=spec.nodata_fill)
    if spec.resize is None:
        return steps
    at = next(i for i, s in enumerate(steps) if s.op == "fill_invalid") + 1
    resize = Step(op="resize_image", where="host", params=dict(spec.resize))
    return (*steps[:at], resize, *steps[at:])


def create_from_training_dir(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model_format: ModelFormat = "export",
    baked: Sequence[str] = DEFAULT_BAKED,
    overwrite: bool = False,
) -> Bundle:
    """``best_model.pth`` + ``normalization_stats.json`` + ``config.yaml`` (+ ``golden/``) -> bundle.

    ``task: classification`` in the config makes a classification bundle: the config must name
    the label map (``postprocessing.labels``) and the resize policy (``input.resize``), and
    the threshold must say where it was calibrated (``postprocessing.calibrated_on``).

    An architecture that mirrors a segmentation_models_pytorch model (``smp_unet``,
    ``smp_unetplusplus``) is built by smp itself when smp is importable, so the program is
    smp's; otherwise by tilecast's implementation, which loads the same state_dict keys.
    """
    from tilecast.models import build_model

    src = os.fspath(src).rstrip("/")
    present = storage.list_files(src)
    missing = [name for name in TRAINING_LAYOUT if name not in present]
    if missing:
        raise BundleError(f"{src}: not a training layout, missing {missing}")
    config = read_training_config(
        storage.read_bytes(f"{src}/config.yaml"), where=f"{src}/config.yaml"
    )
    architecture = config.architecture
    # tilecast's implementation checks the parameters and knows the alignment in any case
    net = build_model(architecture.name, architecture.params)
    params = dict(getattr(net, "config", architecture.params))
    built = smp_config.build_with_smp(net)
    if built is not None:
        net, built_by = built
        log.info("%s %s: built by %s", architecture.name, params, built_by)
    where = f"{src}/best_model.pth"
    load_weights(
        net,
        read_checkpoint(storage.read_bytes(where), where=where),
        where=where,
        architecture=f"{architecture.name} {params}",
    )
    spec = config.input
    post = config.postprocessing
    draft = ContractDraft(
        name=config.model_name,
        version=config.model_version,
        task=config.task,
        input=InputSpec(
            channels=channel_count(spec.channel_order),
            channel_order=spec.channel_order,
            dtype=spec.dtype,
            value_scaling=spec.value_scaling,
            input_range=spec.input_range,
        ),
        sentinels=spec.sentinels,
        preprocessing=_training_steps(spec, baked),
        postprocessing=Postprocessing(
            activation=post.activation,
            labels=post.labels,
            threshold=post.threshold,
            top_k=post.top_k,
            calibrated_on=post.calibrated_on,
        ),
        alignment_multiple=None if built is None else 2 ** params["encoder_depth"],
    )
    golden = [
        GoldenPair.from_bytes(
            name.removeprefix(f"{GOLDEN_DIR}/"),
            storage.read_bytes(f"{src}/{name}"),
            default_order=spec.channel_order,
        )
        for name in present
        if name.startswith(f"{GOLDEN_DIR}/") and name.endswith(".npz")
    ]
    return create_bundle(
        net,
        draft,
        stats_bytes=storage.read_bytes(f"{src}/normalization_stats.json"),
        out=out,
        model_format=model_format,
        architecture=architecture.name,
        training_golden=golden,
        overwrite=overwrite,
        params=params,
        built_by=None if built is None else built[1],
    )


# -- a Python model plus a contract draft ---------------------------------------------------


def import_factory(spec: str) -> Any:
    """``package.module:callable`` -> the callable (run at bundle creation only, never at load)."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ContractError(f"model factory must look like 'package.module:callable', got {spec!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ContractError(f"cannot import model factory {spec!r}: {exc}") from exc


def read_draft(data: bytes, *, where: str) -> ContractDraft:
    try:
        return ContractDraft.model_validate(yaml.safe_load(data))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ContractError(f"{where}: invalid contract draft: {exc}") from exc


def create_from_python(
    factory: str,
    *,
    draft: str | os.PathLike[str],
    stats: str | os.PathLike[str],
    out: str | os.PathLike[str],
    weights: str | os.PathLike[str] | None = None,
    model_format: ModelFormat = "export",
    overwrite: bool = False,
) -> Bundle:
    """Bundle the module that ``factory`` returns, with a contract draft (YAML or JSON)."""
    net = import_factory(factory)()
    if not isinstance(net, nn.Module):
        raise ContractError(
            f"model factory {factory!r} returned {type(net).__name__}, not an nn.Module"
        )
    if weights is not None:
        where = os.fspath(weights)
        load_weights(net, read_checkpoint(storage.read_bytes(weights), where=where), where=where)
    return create_bundle(
        net,
        read_draft(storage.read_bytes(draft), where=os.fspath(draft)),
        stats_bytes=storage.read_bytes(stats),
        out=out,
        model_format=model_format,
        architecture=getattr(net, "registry_name", None),
        overwrite=overwrite,
    )
