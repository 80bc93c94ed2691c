"""Model file formats a bundle can hold, in a registry with one load signature.

- ``export``: a ``torch.export`` program (``model.pt2``), the format tilecast writes. Its
  extra files record the contract digest and the steps baked into the program.
- ``state_dict``: weights (``best_model.pth``, a state_dict or a full checkpoint dict) plus
  an architecture name from :mod:`tilecast.models`; model-side steps are assembled at load.
- ``torchscript``: legacy ``.pt`` archives (TorchScript is deprecated upstream), read with
  their ``_extra_files`` metadata.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tilecast.bundle.baked import BakedSteps, WithBakedSteps
from tilecast.bundle.contract import Contract
from tilecast.bundle.frozen import InferenceModel, training_ops
from tilecast.bundle.stats import NormalizationStats
from tilecast.errors import BundleError, BundleIntegrityError, TilecastWarning, UnknownNameError

log = logging.getLogger(__name__)

EXTRA_DIGEST = "tilecast/contract_digest"
EXTRA_BAKED = "tilecast/baked_steps"
TORCHSCRIPT_META = "tilecast.json"


@dataclass(frozen=True)
class LoadContext:
    contract: Contract
    stats: NormalizationStats
    where: str  # bundle URI + file name, for messages


Loader = Callable[[bytes, LoadContext], InferenceModel]
MODEL_FORMATS: dict[str, Loader] = {}


def register_format(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        MODEL_FORMATS[name] = fn
        return fn

    return deco


def load_model(data: bytes, ctx: LoadContext) -> InferenceModel:
    fmt = ctx.contract.model.format
    loader = MODEL_FORMATS.get(fmt)
    if loader is None:
        raise UnknownNameError("model format", fmt, list(MODEL_FORMATS))
    return loader(data, ctx)


def _check_baked(recorded: Any, ctx: LoadContext) -> None:
    declared = list(ctx.contract.baked_steps)
    if recorded != declared:
        raise BundleIntegrityError(
            f"{ctx.where}: the program bakes in {recorded}, contract.json declares model-side "
            f"steps {declared}; a step would run twice or not at all"
        )


@register_format("export")
def _load_export(data: bytes, ctx: LoadContext) -> InferenceModel:
    extra = {EXTRA_DIGEST: "", EXTRA_BAKED: ""}
    try:
        program = torch.export.load(io.BytesIO(data), extra_files=extra)
    except Exception as exc:  # torch raises many types for a corrupt archive
        raise BundleError(
            f"{ctx.where}: not a torch.export program that torch {torch.__version__} can load "
            f"({exc}); a program is only sure to load on the torch release that exported it "
            "(manifest.json: producer.torch): serve it with that release, or re-create the "
            f"bundle with torch {torch.__version__} (tilecast bundle create)"
        ) from exc
    digest = ctx.contract.digest()
    if extra[EXTRA_DIGEST] != digest:
        raise BundleIntegrityError(
            f"{ctx.where}: records contract digest {extra[EXTRA_DIGEST] or '(none)'}, "
            f"contract.json hashes to {digest}; the program was exported for another contract"
        )
    _check_baked(json.loads(extra[EXTRA_BAKED] or "null"), ctx)
    bad = training_ops(program.graph)
    if bad:
        raise BundleError(f"{ctx.where}: exported in training mode, found {bad[:3]}")
    return InferenceModel(program.module(), exported=True, source=ctx.where)


def extract_state_dict(checkpoint: Any, *, where: str) -> Mapping[str, torch.Tensor]:
    """A state_dict from a bare state_dict or a training checkpoint dict, wrapper prefixes
    (DataParallel, Lightning, torch.compile) stripped: :mod:`tilecast.bundle.checkpoints`."""
    from tilecast.bundle.checkpoints import state_dict_from

    return state_dict_from(checkpoint, where=where)


def build_network(ctx: LoadContext) -> nn.Module:
    from tilecast.models import build_model

    spec = ctx.contract.model
    assert spec.architecture is not None
    return build_model(spec.architecture, spec.params)


def load_state_dict_into(net: nn.Module, state: Mapping[str, torch.Tensor], *, where: str) -> None:
    expected = net.state_dict()
    mismatched = [
        f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if mismatched:
        raise BundleError(
            f"{where}: weights do not fit the architecture: shapes (found != expected) "
            f"{mismatched[:3]}{' ...' if len(mismatched) > 3 else ''}"
        )
    result = net.load_state_dict(dict(state), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BundleError(
            f"{where}: weights do not fit the architecture: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def check_alignment(net: nn.Module, ctx: LoadContext) -> None:
    derived = getattr(net, "alignment", None)
    if derived is not None and derived != ctx.contract.alignment.multiple:
        raise BundleIntegrityError(
            f"{ctx.where}: the architecture needs inputs in multiples of {derived}, "
            f"contract.json says {ctx.contract.alignment.multiple}"
        )


def assemble(net: nn.Module, ctx: LoadContext) -> nn.Module:
    baked = ctx.contract.baked_steps
    if not baked:
        return net
    return WithBakedSteps(BakedSteps(baked, contract=ctx.contract, stats=ctx.stats), net)


@register_format("state_dict")
def _load_state_dict(data: bytes, ctx: LoadContext) -> InferenceModel:
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BundleError(f"{ctx.where}: cannot read weights ({exc})") from exc
    net = build_network(ctx)
    load_state_dict_into(net, extract_state_dict(checkpoint, where=ctx.where), where=ctx.where)
    check_alignment(net, ctx)
    return InferenceModel(assemble(net, ctx), source=ctx.where)


@register_format("torchscript")
def _load_torchscript(data: bytes, ctx: LoadContext) -> InferenceModel:
    extra = {TORCHSCRIPT_META: ""}
    try:
        with warnings.catch_warnings():  # deprecated upstream; reading old archives is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise BundleError(f"{ctx.where}: not a TorchScript archive ({exc})") from exc
    meta = json.loads(extra[TORCHSCRIPT_META] or "{}")
    if "baked_steps" in meta:
        _check_baked(meta["baked_steps"], ctx)
    elif ctx.contract.baked_steps:
        raise BundleIntegrityError(
            f"{ctx.where}: the contract declares model-side steps {list(ctx.contract.baked_steps)} "
            f"but the archive has no {TORCHSCRIPT_META} metadata to confirm them"
        )
    else:
        warnings.warn(
            f"{ctx.where}: legacy TorchScript without {TORCHSCRIPT_META}; "
            "assuming no preprocessing is baked in (golden samples check this)",
            TilecastWarning,
            stacklevel=2,
        )
    return InferenceModel(module, source=ctx.where)


def _size_oblivious() -> Any:
    """Without this, export specialises away inputs whose side is exactly one alignment
    multiple (a 1 x 1 bottleneck), so a 20 px image padded to 32 would be refused at serve time.
    The switch is private to torch; where it is missing, export runs as is."""
    try:
        from torch.fx.experimental import _config as fx_config

        return fx_config.patch(backed_size_oblivious=True)
    except (ImportError, AttributeError, KeyError):  # pragma: no cover - older/newer torch
        import contextlib

        return contextlib.nullcontext()


def export_program(
    module: nn.Module, *, contract: Contract, example: torch.Tensor, max_side: int = 16384
) -> bytes:
    """Export ``module`` (already wrapped with its baked steps) as ``model.pt2`` bytes."""
    from torch.export import Dim

    module = module.eval()
    module.requires_grad_(False)
    m = contract.alignment.multiple
    limit = max(2, max_side // m)
    dims = {
        0: Dim("batch", min=1, max=4096),
        2: m * Dim("h", min=1, max=limit) if m > 1 else Dim("h", min=1, max=max_side),
        3: m * Dim("w", min=1, max=limit) if m > 1 else Dim("w", min=1, max=max_side),
    }
    with torch.no_grad(), _size_oblivious():
        program = torch.export.export(module, (example,), dynamic_shapes=(dims,))
    buf = io.BytesIO()
    torch.export.save(
        program,
        buf,
        extra_files={
            EXTRA_DIGEST: contract.digest(),
            EXTRA_BAKED: json.dumps(list(contract.baked_steps)),
        },
    )
    return buf.getvalue()
