"""What a classification contract declares beyond a segmentation one.

The resize policy the model was trained with (a typed ``resize`` step: a fixed size, or the
shorter side then a centre crop, with the interpolation named) and the checks that make a
classifier's contract complete: a label map that matches the model's outputs, a softmax or
sigmoid activation, a threshold that says where it was calibrated, a sensible top-k.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from tilecast.prep.resize import Interpolation

if TYPE_CHECKING:
    from tilecast.bundle.contract import Contract


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedResize(_Strict):
    """Resize to ``size`` = (height, width) exactly, the aspect ratio not kept."""

    policy: Literal["fixed"]
    size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]
    interpolation: Interpolation
    antialias: bool

    @property
    def output_hw(self) -> tuple[int, int]:
        return self.size


class ShorterSideCrop(_Strict):
    """Resize the shorter side to ``shorter_side`` (aspect kept), then crop the centre."""

    policy: Literal["shorter_side_crop"]
    shorter_side: int = Field(ge=1)
    crop: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]
    interpolation: Interpolation
    antialias: bool

    @model_validator(mode="after")
    def _crop_fits(self) -> ShorterSideCrop:
        if max(self.crop) > self.shorter_side:
            raise ValueError(
                f"crop {list(self.crop)} does not fit in a shorter side of {self.shorter_side} px"
            )
        return self

    @property
    def output_hw(self) -> tuple[int, int]:
        return self.crop


ResizeSpec = Annotated[FixedResize | ShorterSideCrop, Field(discriminator="policy")]
_RESIZE = TypeAdapter(ResizeSpec)


def parse_resize(params: dict[str, Any]) -> FixedResize | ShorterSideCrop:
    """The ``resize_image`` step's parameters as a typed policy; ValueError naming what is wrong."""
    try:
        return _RESIZE.validate_python(params)
    except ValidationError as exc:
        raise ValueError(
            "resize_image params must be {policy: fixed, size: [h, w], interpolation, "
            "antialias} or {policy: shorter_side_crop, shorter_side, crop: [h, w], "
            f"interpolation, antialias}}; {exc}"
        ) from None


def check_classification(contract: Contract) -> None:
    """A classifier's contract names its labels, activation, calibration and resize policy."""
    post = contract.postprocessing
    labels = post.labels
    if not labels:
        raise ValueError(
            "a classification contract needs its label map: postprocessing.labels names each "
            "output index, none are given"
        )
    blank = [i for i, name in enumerate(labels) if not name.strip()]
    if blank:
        raise ValueError(f"postprocessing.labels has blank names at indices {blank}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"postprocessing.labels names a label twice: {list(labels)}")
    if len(labels) != contract.model.classes:
        raise ValueError(
            f"the label map names {len(labels)} labels but the model has "
            f"{contract.model.classes} outputs"
        )
    if post.activation not in ("softmax", "sigmoid"):
        raise ValueError(
            "a classifier's activation must be softmax (one label) or sigmoid (multi-label), "
            f"{post.activation!r} is given"
        )
    if post.top_k is not None and post.top_k > len(labels):
        raise ValueError(f"top_k is {post.top_k} but there are {len(labels)} labels")
    if post.calibrated_on is None:
        raise ValueError(
            f"threshold {post.threshold} has no calibrated_on: name the held-out set it was "
            "calibrated on (an uncalibrated threshold makes 'uncertain' meaningless)"
        )
    if contract.step("resize_image") is None:
        raise ValueError(
            "a classification contract needs a resize_image step with the policy the model was "
            "trained with (fixed or shorter_side_crop), so no image reaches it at another size"
        )
