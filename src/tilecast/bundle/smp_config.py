"""segmentation_models_pytorch (smp) models described in a training ``config.yaml``.

A training team that trains with smp describes its model in smp's own terms, in one of two
places (``model_name``, ``input``, ``postprocessing`` and the rest stay as they are):

- at the top level, beside the other keys::

      architecture: UnetPlusPlus
      encoder_name: resnet34
      in_channels: 4
      classes: 1
      decoder_channels: [256, 128, 64, 32, 16]   # only when not smp's default
      encoder_depth: 5                             # idem

- or in a ``model:`` section, as initze/thaw-slump-segmentation (DARTS) writes it, where the
  encoder may be called ``encoder``.

:func:`describe` turns such a description into a registered tilecast architecture: the one
whose class names the smp class in ``smp_class`` (``smp_unet`` for ``Unet``,
``smp_unetplusplus`` for ``UnetPlusPlus``), with smp's defaults for what is not given.
:func:`build_with_smp` builds the same model with smp itself when smp can be imported, so that
the bundle holds smp's own network; tilecast's implementation, which loads the same state_dict
keys, is used where smp cannot be imported (torchvision missing or broken, as in the CPU venv).
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from torch import nn

from tilecast.errors import ContractError, TilecastWarning

# smp's constructor arguments that a config may give: the ones that shape the state_dict and
# the outputs, plus where training started (encoder_weights, ignored: the checkpoint has it all).
SMP_KEYS = (
    "architecture",
    "encoder_name",
    "encoder",  # initze/thaw-slump-segmentation's name for encoder_name
    "encoder_weights",
    "encoder_depth",
    "decoder_channels",
    "in_channels",
    "classes",
    "decoder_use_batchnorm",  # smp < 0.5
    "decoder_use_norm",
    "decoder_attention_type",
    "decoder_interpolation",
    "activation",
    "aux_params",
)
# smp arguments tilecast implements one value of: (allowed values, what to do otherwise).
_SMP_FIXED: dict[str, tuple[tuple[Any, ...], str]] = {
    "decoder_use_batchnorm": ((True, "batchnorm"), "tilecast implements the batch-norm decoder"),
    "decoder_use_norm": ((True, "batchnorm"), "tilecast implements the batch-norm decoder"),
    "decoder_attention_type": ((None,), "tilecast implements the decoder without attention"),
    "decoder_interpolation": (("nearest",), "tilecast implements nearest upsampling"),
    "activation": (
        (None, "identity"),
        "the model must return logits; name the activation in postprocessing.activation",
    ),
    "aux_params": ((None,), "tilecast implements models without the auxiliary classifier"),
}


def smp_architectures() -> dict[str, str]:
    """smp class name -> registered tilecast architecture, from each model's ``smp_class``."""
    from tilecast.models import ARCHITECTURES

    return {
        factory.smp_class: name
        for name, factory in ARCHITECTURES.items()
        if isinstance(getattr(factory, "smp_class", None), str)
    }


def _smp_arguments(raw: Mapping[str, Any], *, where: str) -> tuple[str, dict[str, Any]] | None:
    """(``""`` or ``"model."``, smp's arguments) when ``raw`` describes an smp model (module
    doc); ``None`` otherwise."""
    top = raw.get("architecture")
    section = raw.get("model")
    in_section = isinstance(section, Mapping) and "architecture" in section
    if in_section and top is not None:
        raise ContractError(
            f"{where}: the model is described twice, by 'architecture' and "
            f"'model.architecture'; keep one"
        )
    if isinstance(top, str):
        return "", {k: raw[k] for k in SMP_KEYS if k in raw}
    if in_section:
        assert isinstance(section, Mapping)
        unknown = [str(k) for k in section if k not in SMP_KEYS]
        if unknown:
            raise ContractError(
                f"{where}: model.{unknown[0]} is not an smp argument tilecast knows "
                f"({len(unknown)} unknown: {unknown}); known: {', '.join(SMP_KEYS)}"
            )
        return "model.", dict(section)
    return None


def smp_architecture(
    smp_args: Mapping[str, Any], *, at: str = "", channels: int | None, where: str
) -> tuple[str, dict[str, Any]]:
    """smp's constructor arguments (``architecture: Unet``, ``encoder_name``, ...) -> the
    registered tilecast architecture and its parameters. Defaults are smp's, except
    ``in_channels``, which defaults to the input's channel count ``channels``; ``at`` is where
    the arguments are in the config (``""`` or ``"model."``), for messages."""
    names = smp_architectures()
    given = smp_args.get("architecture")
    by_lower = {k.lower(): v for k, v in names.items()}
    name = by_lower.get(given.lower()) if isinstance(given, str) else None
    if name is None:
        raise ContractError(
            f"{where}: {at}architecture must be one of {', '.join(sorted(names))} (the "
            f"segmentation_models_pytorch models tilecast implements); {given!r} is given"
        )
    if "encoder" in smp_args and "encoder_name" in smp_args:
        raise ContractError(f"{where}: give {at}encoder_name or {at}encoder, not both")
    for key, (allowed, meaning) in _SMP_FIXED.items():
        if key in smp_args and smp_args[key] not in allowed:
            raise ContractError(
                f"{where}: {at}{key} must be {' or '.join(map(repr, allowed))} ({meaning}); "
                f"{smp_args[key]!r} is given"
            )
    in_channels = smp_args.get("in_channels", channels)
    if channels is not None and in_channels != channels:
        raise ContractError(
            f"{where}: {at}in_channels is {in_channels!r} but input.channel_order names "
            f"{channels} channels"
        )
    params: dict[str, Any] = {
        "encoder_name": smp_args.get("encoder_name", smp_args.get("encoder", "resnet34")),
        "in_channels": 3 if in_channels is None else in_channels,
        "classes": smp_args.get("classes", 1),
        "encoder_depth": smp_args.get("encoder_depth", 5),
    }
    if "decoder_channels" in smp_args:
        decoder = smp_args["decoder_channels"]
        params["decoder_channels"] = list(decoder) if isinstance(decoder, list | tuple) else decoder
    return name, params


def describe(raw: Mapping[str, Any], *, channels: int | None, where: str) -> dict[str, Any] | None:
    """The registered architecture (``{"name", "params"}``) for a config that describes an smp
    model (module doc), ``None`` for one that does not; ``channels`` is the input's channel
    count, when the config names it."""
    found = _smp_arguments(raw, where=where)
    if found is None:
        return None
    at, smp_args = found
    name, params = smp_architecture(smp_args, at=at, channels=channels, where=where)
    return {"name": name, "params": params}


def import_smp() -> ModuleType | None:
    """segmentation_models_pytorch when it is importable, else ``None`` (a broken install is
    reported as a warning: tilecast's own implementation is used instead)."""
    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        return None
    try:
        return importlib.import_module("segmentation_models_pytorch")
    except Exception as exc:  # a broken install raises anything (its torchvision, say)
        warnings.warn(
            f"segmentation_models_pytorch is installed but cannot be imported ({exc}); "
            "building the model with tilecast's own implementation",
            TilecastWarning,
            stacklevel=3,
        )
        return None


def build_with_smp(net: nn.Module) -> tuple[nn.Module, str] | None:
    """The same model as ``net`` built by segmentation_models_pytorch, untrained, and smp's
    name and version, when ``net`` mirrors an smp class (``smp_class``) and smp is importable;
    ``None`` otherwise."""
    smp_class = getattr(type(net), "smp_class", None)
    if smp_class is None:
        return None
    smp = import_smp()
    if smp is None:
        return None
    model = getattr(smp, smp_class)(encoder_weights=None, **net.config)
    return model, f"segmentation_models_pytorch {smp.__version__}"
