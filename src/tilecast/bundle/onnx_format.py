"""ONNX as a bundle format: ``model.onnx`` run with onnxruntime (the ``onnx`` extra).

The graph's ``metadata_props`` carry what the export format keeps in its extra files: the
contract digest (``tilecast/contract_digest``) and the steps baked into the graph
(``tilecast/baked_steps``); the loader compares both with ``contract.json``. The loaded model
looks like every other format to the rest of tilecast: an :class:`InferenceModel` taking a
float32 ``(N, C, H, W)`` tensor and returning ``(N, K, H, W)`` logits on the input's device.

*Layout.* Graphs made by Keras take channels-last images. The contract says which layout the
graph takes in ``model.params.layout`` (``NCHW``, the default, or ``NHWC``); the wrapper
transposes the ``(N, C, H, W)`` batch the runtime prepares into that layout and the output
back, so the contract's steps, padding and cropping stay channels-first everywhere else.
``bundle import`` reads the layout off the graph's input shape where the channel axis is
static, and the loader checks the declaration against the graph.

*Running.* One onnxruntime session per bundle, with the CUDA provider first when the
installed onnxruntime has it. Inputs and outputs go through an ``io_binding`` on the
tensors' own memory (no copy on the CPU; on a GPU the session reads and writes torch's CUDA
buffers), so one code path serves both devices.

*Export.* ``bundle create --format onnx`` exports with torch's dynamo-based exporter at opset
:data:`OPSET` with a dynamic batch, height and width (height and width in multiples of the
contract's alignment), the baked steps inside the graph as for ``model.pt2``, and GroupNorm
as :class:`StagedGroupNorm`, so that onnxruntime's float32 sums stay as exact as torch's.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tilecast.bundle.contract import Contract
from tilecast.bundle.formats import (
    EXTRA_BAKED,
    EXTRA_DIGEST,
    LoadContext,
    _check_baked,
    _size_oblivious,
    register_format,
)
from tilecast.bundle.frozen import InferenceModel
from tilecast.errors import BundleError, BundleIntegrityError, InputError
from tilecast.optional import import_optional

log = logging.getLogger(__name__)

#: The opset ``bundle create --format onnx`` writes: the one torch's dynamo exporter
#: translates to natively (its torchlib is written against 18; any other opset adds a version
#: conversion pass that can fail on some ops), covering every op the registered
#: architectures use, and read by onnxruntime >= 1.14 and TensorRT >= 8.6.
OPSET = 18
MODEL_FILE = "model.onnx"
EXTRA = "onnx"
Layout = Literal["NCHW", "NHWC"]
LAYOUTS: tuple[Layout, ...] = ("NCHW", "NHWC")
_METADATA_PREFIX = "tilecast/"
_FLOAT = "tensor(float)"


def onnxruntime() -> Any:
    return import_optional("onnxruntime", extra=EXTRA, purpose="running an ONNX model")


def onnx_package(purpose: str) -> Any:
    return import_optional("onnx", extra=EXTRA, purpose=purpose)


# -- the graph's signature and layout ------------------------------------------------------

Dim = int | str | None  # onnxruntime's shapes: int when static, a name or None when not


@dataclass(frozen=True)
class GraphSignature:
    """The one input and the output tilecast uses, as onnxruntime reports them."""

    input_name: str
    input_shape: tuple[Dim, ...]
    output_name: str
    output_shape: tuple[Dim, ...]


def graph_signature(session: Any, *, where: str) -> GraphSignature:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        names = [f"{i.name} {i.shape}" for i in inputs]
        raise BundleError(f"{where}: expected a graph with one image input, found {names}")
    first, out = inputs[0], outputs[0]
    for role, arg in (("input", first), ("output", out)):
        if arg.type != _FLOAT:
            raise BundleError(
                f"{where}: expected a float32 {role} ({_FLOAT}), {arg.name!r} is {arg.type}"
            )
    if len(outputs) > 1:
        log.info("%s: %d outputs; using the first, %r", where, len(outputs), out.name)
    return GraphSignature(
        input_name=first.name,
        input_shape=tuple(first.shape),
        output_name=out.name,
        output_shape=tuple(out.shape),
    )


def _axes(layout: str) -> tuple[int, int, int]:
    """(channel, height, width) axes of a rank-4 tensor in ``layout``."""
    return (1, 2, 3) if layout == "NCHW" else (3, 1, 2)


def layout_of(contract: Contract, *, where: str) -> Layout:
    layout = contract.model.params.get("layout", "NCHW")
    if layout not in LAYOUTS:
        raise BundleError(
            f"{where}: model.params.layout must be one of {list(LAYOUTS)}, found {layout!r}"
        )
    return layout


def infer_layout(shape: Sequence[Dim], *, channels: int) -> Layout | None:
    """The layout a rank-4 input shape shows by its static channel axis; None if it does not."""
    if len(shape) != 4:
        return None
    first, last = shape[1] == channels, shape[3] == channels
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    return None


def check_graph(sig: GraphSignature, *, layout: str, channels: int, where: str) -> None:
    """The graph takes what the contract feeds: ``layout``, ``channels``, any height and width."""
    shape = sig.input_shape
    c_axis, h_axis, w_axis = _axes(layout)
    expected = "(N, C, H, W)" if layout == "NCHW" else "(N, H, W, C)"
    if len(shape) != 4:
        raise BundleError(
            f"{where}: expected a rank-4 image input {expected}, {sig.input_name!r} is {list(shape)}"
        )
    seen = infer_layout(shape, channels=channels)  # the static channel axis may show another
    contradicts = seen is not None and seen != layout
    if contradicts or (isinstance(shape[c_axis], int) and shape[c_axis] != channels):
        shown = f", which is {seen}" if contradicts else ""
        raise BundleError(
            f"{where}: the contract declares layout {layout} {expected} with {channels} "
            f"channel(s), the graph's input {sig.input_name!r} is {list(shape)}{shown}"
        )
    fixed = [shape[a] for a in (h_axis, w_axis) if isinstance(shape[a], int)]
    if fixed:
        raise BundleError(
            f"{where}: the graph's input {sig.input_name!r} is {list(shape)}, fixed in height "
            f"or width; tilecast feeds images of any size padded to the alignment multiple, so "
            "the graph needs a dynamic height and width (export with dynamic axes)"
        )
    batch = shape[0]
    if isinstance(batch, int) and batch != 1:
        raise BundleError(
            f"{where}: the graph's batch is fixed at {batch}; expected a dynamic batch or 1"
        )


# -- the session and the wrapper ------------------------------------------------------------


def providers(ort: Any) -> list[str]:
    """CUDA first when this onnxruntime has it, the CPU always."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def open_session(data: bytes, *, where: str) -> Any:
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the library stays silent
    # pool threads sleep between runs instead of spinning beside the job's other stages
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(data, sess_options=options, providers=providers(ort))
    except Exception as exc:  # onnxruntime raises its own types for a bad graph
        raise BundleError(f"{where}: not an ONNX model onnxruntime can run ({exc})") from exc


class OnnxModule(nn.Module):
    """An onnxruntime session as a module: float32 ``(N, C, H, W)`` in, ``(N, K, H, W)`` out.

    Holds no parameters: ``.to(device)`` changes nothing, and the output lands on the input's
    device. ``alignment`` is the contract's, checked on every call as the other formats'
    architectures check theirs by failing.
    """

    def __init__(
        self,
        session: Any,
        *,
        signature: GraphSignature,
        layout: Layout,
        channels: int,
        classes: int,
        alignment: int,
        task: str = "segmentation",
        where: str = "model.onnx",
    ) -> None:
        super().__init__()
        self.session = session
        self.signature = signature
        self.layout = layout
        self.channels = channels
        self.classes = classes
        self.alignment = alignment
        self.task = task
        self.where = where
        self.one_at_a_time = signature.input_shape[0] == 1  # a graph fixed at batch 1
        self.cuda = "CUDAExecutionProvider" in session.get_providers()

    def extra_repr(self) -> str:
        return f"{self.where}, layout={self.layout}, providers={self.session.get_providers()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise InputError(
                f"{self.where}: expected a (N, {self.channels}, H, W) batch, got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % self.alignment or w % self.alignment:
            raise InputError(
                f"{self.where}: height and width must be multiples of {self.alignment} "
                f"(the contract's alignment), got {h} x {w}"
            )
        if self.one_at_a_time and x.shape[0] > 1:
            return torch.cat([self._run(x[i : i + 1]) for i in range(x.shape[0])])
        return self._run(x)

    def _output_shape(self, feed: torch.Tensor) -> tuple[int, ...]:
        n = feed.shape[0]
        if self.task != "segmentation":
            return (n, self.classes)
        _, h_axis, w_axis = _axes(self.layout)
        h, w = feed.shape[h_axis], feed.shape[w_axis]
        return (n, self.classes, h, w) if self.layout == "NCHW" else (n, h, w, self.classes)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        on_gpu = self.cuda and x.device.type == "cuda"
        feed = x.to("cuda:0" if on_gpu else "cpu", torch.float32)
        if self.layout == "NHWC":
            feed = feed.permute(0, 2, 3, 1)  # a view; contiguous() below lays it out
        feed = feed.contiguous()
        out = torch.empty(self._output_shape(feed), dtype=torch.float32, device=feed.device)
        kind = "cuda" if on_gpu else "cpu"
        index = feed.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(
            self.signature.input_name, kind, index, np.float32, tuple(feed.shape), feed.data_ptr()
        )
        binding.bind_output(
            self.signature.output_name, kind, index, np.float32, tuple(out.shape), out.data_ptr()
        )
        if on_gpu:  # the batch was written on torch's stream; the session reads on its own
            torch.cuda.current_stream(feed.device).synchronize()
        try:
            self.session.run_with_iobinding(binding)  # returns when the output is written
        except Exception as exc:
            raise BundleError(
                f"{self.where}: onnxruntime could not run the graph on a {tuple(feed.shape)} "
                f"{self.layout} batch (expected output {tuple(out.shape)}): {exc}"
            ) from exc
        if self.layout == "NHWC" and out.ndim == 4:
            out = out.permute(0, 3, 1, 2)
        return out.to(x.device)


def wrap_session(
    session: Any, contract: Contract, *, layout: Layout, where: str, classes: int | None = None
) -> InferenceModel:
    """The session checked against the contract and wrapped as an :class:`InferenceModel`."""
    sig = graph_signature(session, where=where)
    channels = contract.input.channels
    check_graph(sig, layout=layout, channels=channels, where=where)
    classes = contract.model.classes if classes is None else classes
    if contract.task == "segmentation" and len(sig.output_shape) == 4:
        found = sig.output_shape[_axes(layout)[0]]
        if isinstance(found, int) and found != classes:
            raise BundleIntegrityError(
                f"{where}: the graph's output {sig.output_name!r} is {list(sig.output_shape)} "
                f"({layout}: {found} classes), contract.json declares {classes} classes"
            )
    module = OnnxModule(
        session,
        signature=sig,
        layout=layout,
        channels=channels,
        classes=classes,
        alignment=contract.alignment.multiple,
        task=contract.task,
        where=where,
    )
    return InferenceModel(module, exported=True, source=where)


# -- metadata -------------------------------------------------------------------------------


def parse_model(data: bytes, *, where: str) -> Any:
    onnx = onnx_package("reading an ONNX model's metadata")
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise BundleError(f"{where}: not an ONNX model ({exc})") from exc


def metadata(model: Any) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def stamp(model: Any, contract: Contract, *, where: str) -> bytes:
    """``model`` serialised with the contract digest and baked steps in its metadata_props
    (other metadata kept, earlier tilecast entries replaced)."""
    external = [
        t.name
        for t in model.graph.initializer
        if t.data_location == 1  # onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise BundleError(
            f"{where}: weights {external[:3]} live in external data files; a bundle holds one "
            "model file: save the model with its weights inside (onnx.save(model, path, "
            "save_as_external_data=False))"
        )
    props = {k: v for k, v in metadata(model).items() if not k.startswith(_METADATA_PREFIX)}
    props[EXTRA_DIGEST] = contract.digest()
    props[EXTRA_BAKED] = json.dumps(list(contract.baked_steps))
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def training_nodes(model: Any) -> list[str]:
    """Nodes that run in training mode: BatchNormalization(training_mode=1), or Dropout whose
    ``training_mode`` input is a constant true."""
    graph = model.graph
    constants: dict[str, bool] = {}
    for tensor in graph.initializer:
        if tensor.data_type == 9 and tensor.int32_data:  # BOOL
            constants[tensor.name] = bool(tensor.int32_data[0])
        elif tensor.data_type == 9 and tensor.raw_data:
            constants[tensor.name] = bool(tensor.raw_data[0])
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == 9:
                    raw = attr.t.raw_data or bytes(attr.t.int32_data)
                    constants[node.output[0]] = bool(raw[:1] == b"\x01")
    found = []
    for node in graph.node:
        if node.op_type == "BatchNormalization" and any(
            a.name == "training_mode" and a.i == 1 for a in node.attribute
        ):
            found.append(f"{node.name or node.output[0]} (BatchNormalization, training_mode=1)")
        if node.op_type == "Dropout" and len(node.input) > 2 and constants.get(node.input[2]):
            found.append(f"{node.name or node.output[0]} (Dropout, training_mode=true)")
    return found


# -- the loader -----------------------------------------------------------------------------


@register_format("onnx")
def _load_onnx(data: bytes, ctx: LoadContext) -> InferenceModel:
    model = parse_model(data, where=ctx.where)
    meta = metadata(model)
    digest = ctx.contract.digest()
    if meta.get(EXTRA_DIGEST) != digest:
        raise BundleIntegrityError(
            f"{ctx.where}: records contract digest {meta.get(EXTRA_DIGEST) or '(none)'} in its "
            f"metadata_props, contract.json hashes to {digest}; the graph was stamped for "
            "another contract"
        )
    try:
        recorded = json.loads(meta.get(EXTRA_BAKED) or "null")
    except ValueError as exc:
        raise BundleIntegrityError(
            f"{ctx.where}: metadata {EXTRA_BAKED} is not JSON: {meta[EXTRA_BAKED]!r}"
        ) from exc
    _check_baked(recorded, ctx)
    bad = training_nodes(model)
    if bad:
        raise BundleError(f"{ctx.where}: exported in training mode, found {bad[:3]}")
    del model
    layout = layout_of(ctx.contract, where=ctx.where)
    session = open_session(data, where=ctx.where)
    return wrap_session(session, ctx.contract, layout=layout, where=ctx.where)


# -- export ---------------------------------------------------------------------------------


class StagedGroupNorm(nn.Module):
    """:class:`torch.nn.GroupNorm` whose mean and variance are taken one axis at a time.

    torch exports GroupNorm as InstanceNormalization over ``(N, G, -1)``, and onnxruntime's CPU
    kernels (InstanceNormalization and ReduceMean alike) sum a whole group in one float32
    pass: on a 150 x 420 well-log scan a group of a million values comes out ~1e-4 off, 30
    times torch's error. Means over width, then height, then the group's channels keep every
    sum short; the graph gives torch's result to ~1e-6. Same parameters, same arithmetic.
    """

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.groups, self.eps = norm.num_groups, norm.eps
        self.weight, self.bias = norm.weight, norm.bias  # None when not affine

    @staticmethod
    def _mean(t: torch.Tensor) -> torch.Tensor:
        for axis in range(t.ndim - 1, 1, -1):  # (N, G, C/G, *spatial): all but N and G
            t = t.mean(axis, keepdim=True)
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grouped = x.unflatten(1, (self.groups, -1))
        centred = grouped - self._mean(grouped)
        var = self._mean(centred * centred)
        out = (centred * torch.rsqrt(var + self.eps)).flatten(1, 2)
        if self.weight is None:
            return out
        shape = (-1,) + (1,) * (x.ndim - 2)
        return out * self.weight.view(shape) + self.bias.view(shape)


def with_staged_norms(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every GroupNorm a :class:`StagedGroupNorm`."""
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.GroupNorm):
                setattr(parent, name, StagedGroupNorm(child))
    return module


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's exporter logs missing torchvision ops and warns about pytree internals; the
    library stays silent (errors still raise)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(
    module: nn.Module,
    *,
    contract: Contract,
    example: torch.Tensor,
    max_side: int = 16384,
    opset: int = OPSET,
) -> bytes:
    """Export ``module`` (already wrapped with its baked steps) as ``model.onnx`` bytes."""
    onnx_package("exporting a model to ONNX")
    import_optional("onnxscript", extra=EXTRA, purpose="torch's ONNX exporter")
    from torch.export import Dim as ExportDim

    module = with_staged_norms(module).eval()
    module.requires_grad_(False)
    m = contract.alignment.multiple
    limit = max(2, max_side // m)
    dims = {
        0: ExportDim("batch", min=1, max=4096),
        2: m * ExportDim("h", min=1, max=limit) if m > 1 else ExportDim("h", min=1, max=max_side),
        3: m * ExportDim("w", min=1, max=limit) if m > 1 else ExportDim("w", min=1, max=max_side),
    }
    with torch.no_grad(), _size_oblivious(), _quiet_exporter():
        try:
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=(dims,),
                optimize=True,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many types
            raise BundleError(f"cannot export the model to ONNX (opset {opset}): {exc}") from exc
    return stamp(program.model_proto, contract, where="(model being bundled)")
