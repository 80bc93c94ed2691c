"""The model contract: everything the serving path needs to reproduce training, as data.

A contract is JSON (``contract.json``) validated by the pydantic models below. Unknown keys are
rejected. Preprocessing is an ordered list of named steps; each step's parameters come from
one place (the input spec, the statistics file, the alignment), so nothing is typed twice. A
step runs either on the host or inside the model program (``where``), never both.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from tilecast.bundle.classification import (
    FixedResize,
    ShorterSideCrop,
    check_classification,
    parse_resize,
)

CONTRACT_SCHEMA_VERSION = 1

ChannelOrder = str  # letters, e.g. "RGB", "BGR", "L" (one grayscale channel), "RGBN"
ValueScaling = Literal["raw", "unit", "symmetric"]
PadMode = Literal["reflect", "replicate", "constant"]
FillPolicy = Literal["mean", "zero", "constant"]
Where = Literal["host", "model"]

# Ops a contract may name, in the only order they may appear. ``bakeable`` ops are per-pixel
# arithmetic that can run inside the exported program; the rest always run on the host.
STEP_ORDER: tuple[str, ...] = (
    "guard_sentinels",
    "reorder_channels",
    "fill_invalid",
    "resize_image",
    "scale_values",
    "normalize",
    "pad_to_multiple",
)
# ``resize_image`` (classification only) is never a default step: a segmentation map must stay
# aligned with the input's pixels.
DEFAULT_STEPS = tuple(op for op in STEP_ORDER if op != "resize_image")
BAKEABLE_STEPS = frozenset({"scale_values", "normalize"})
REQUIRED_STEPS = ("guard_sentinels", "reorder_channels", "fill_invalid", "pad_to_multiple")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    channels: int = Field(gt=0)
    channel_order: ChannelOrder
    dtype: Literal["uint8", "uint16", "int16", "float32"]
    value_scaling: ValueScaling
    input_range: tuple[float, float]

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if len(self.channel_order) != self.channels and self.channel_order not in ("L", "GRAY"):
            raise ValueError(
                f"channel_order {self.channel_order!r} names {len(self.channel_order)} channels "
                f"but channels is {self.channels}"
            )
        if self.channel_order in ("L", "GRAY") and self.channels != 1:
            raise ValueError(
                f"channel_order {self.channel_order!r} needs channels=1, got {self.channels}"
            )
        lo, hi = self.input_range
        if not hi > lo:
            raise ValueError(
                f"input_range must be (low, high) with high > low, got {self.input_range}"
            )
        return self


class StatsSpec(_Strict):
    file: str = "normalization_stats.json"
    md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    dataset_version: str = Field(min_length=1)


class SentinelSpec(_Strict):
    values: tuple[float, ...] = (-999.0, -999.25, -9999.0)
    nan: bool = True
    inf: bool = True
    strings: tuple[str, ...] = ("NA", "N/A", "", "None", "null", "NaN", "nan")


class Step(_Strict):
    op: str
    where: Where = "host"
    params: dict[str, Any] = Field(default_factory=dict)


class Alignment(_Strict):
    multiple: int = Field(ge=1)
    pad_mode: PadMode = "reflect"


class Postprocessing(_Strict):
    activation: Literal["sigmoid", "softmax", "none"]
    labels: tuple[str, ...]
    threshold: float = Field(ge=0.0, le=1.0)
    positive_index: int = Field(
        default=-1, description="output channel that the threshold applies to"
    )
    # classification: how many ranked labels each answer lists, and the held-out set the
    # threshold was calibrated on. Left out of the serialised form when unset, so contracts
    # that do not use them keep their bytes and digest.
    top_k: int | None = Field(default=None, ge=1)
    calibrated_on: str | None = Field(default=None, min_length=1)

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for key in _OPTIONAL_POSTPROCESSING:
            if data.get(key) is None:
                data.pop(key, None)
        return data


_OPTIONAL_POSTPROCESSING = ("top_k", "calibrated_on")


class GoldenSpec(_Strict):
    atol: float = Field(default=1e-4, gt=0)
    rtol: float = Field(default=0.0, ge=0)
    source: Literal["training", "bundle"] = "bundle"
    files: tuple[str, ...] = ()


class ModelSpec(_Strict):
    format: Literal["export", "state_dict", "torchscript", "onnx"]
    file: str
    architecture: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    classes: int = Field(gt=0)

    @model_validator(mode="after")
    def _architecture_for_state_dict(self) -> ModelSpec:
        if self.format == "state_dict" and not self.architecture:
            raise ValueError("a state_dict model needs an architecture name from the registry")
        return self


class Contract(_Strict):
    schema_version: Literal[1] = CONTRACT_SCHEMA_VERSION
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    task: Literal["segmentation", "classification"] = "segmentation"
    input: InputSpec
    stats: StatsSpec
    sentinels: SentinelSpec = SentinelSpec()
    preprocessing: tuple[Step, ...]
    alignment: Alignment
    postprocessing: Postprocessing
    model: ModelSpec
    golden: GoldenSpec = GoldenSpec()

    @field_validator("preprocessing")
    @classmethod
    def _valid_steps(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        names = [s.op for s in steps]
        unknown = [n for n in names if n not in STEP_ORDER]
        if unknown:
            raise ValueError(f"unknown preprocessing op(s) {unknown}; known: {list(STEP_ORDER)}")
        if len(set(names)) != len(names):
            raise ValueError(f"each preprocessing op may appear once, got {names}")
        expected = [n for n in STEP_ORDER if n in names]
        if names != expected:
            raise ValueError(f"preprocessing ops must run in the order {expected}, got {names}")
        missing = [n for n in REQUIRED_STEPS if n not in names]
        if missing:
            raise ValueError(f"preprocessing must include {missing}")
        seen_model = False
        for step in steps:
            if step.where == "model":
                if step.op not in BAKEABLE_STEPS:
                    raise ValueError(
                        f"op {step.op!r} cannot run inside the model; only {sorted(BAKEABLE_STEPS)} can"
                    )
                seen_model = True
            elif seen_model and step.op != "pad_to_multiple":
                raise ValueError(
                    f"host op {step.op!r} comes after a model-side op; model-side ops must be last"
                )
        return steps

    @model_validator(mode="after")
    def _cross_checks(self) -> Contract:
        fill = self.step("fill_invalid")
        if fill is not None:
            policy = fill.params.get("policy", "mean")
            if policy not in ("mean", "zero", "constant"):
                raise ValueError(
                    f"fill_invalid policy must be mean, zero or constant, got {policy!r}"
                )
            if policy == "constant" and "value" not in fill.params:
                raise ValueError("fill_invalid policy 'constant' needs params.value")
        if self.baked_steps and self.alignment.pad_mode == "constant":
            raise ValueError(
                "pad_mode 'constant' with model-side steps would pad before normalising; "
                "use reflect or replicate, or run the steps on the host"
            )
        n_labels = len(self.postprocessing.labels)
        resize = self.step("resize_image")
        if resize is not None:
            parse_resize(resize.params)
        if self.task == "classification":
            check_classification(self)
        elif n_labels != self.model.classes and not (self.model.classes == 1 and n_labels == 2):
            raise ValueError(
                f"postprocessing.labels has {n_labels} entries but the model has "
                f"{self.model.classes} output classes"
            )
        elif resize is not None:
            raise ValueError(
                "a resize_image step is for classification; a segmentation map must stay aligned "
                "with the input's pixels"
            )
        return self

    @property
    def resize(self) -> FixedResize | ShorterSideCrop | None:
        step = self.step("resize_image")
        return None if step is None else parse_resize(step.params)

    def step(self, op: str) -> Step | None:
        return next((s for s in self.preprocessing if s.op == op), None)

    @property
    def host_steps(self) -> tuple[str, ...]:
        return tuple(s.op for s in self.preprocessing if s.where == "host")

    @property
    def baked_steps(self) -> tuple[str, ...]:
        return tuple(s.op for s in self.preprocessing if s.where == "model")

    def digest(self) -> str:
        """sha256 of the canonical JSON form; the exported program records it."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def default_steps(*, baked: tuple[str, ...] = (), fill: FillPolicy = "mean") -> tuple[Step, ...]:
    """The standard ordered steps: guard, reorder, fill, scale, normalise, pad."""
    return tuple(
        Step(
            op=op,
            where="model" if op in baked else "host",
            params={"policy": fill} if op == "fill_invalid" else {},
        )
        for op in DEFAULT_STEPS
    )
