"""The registration record of one scan: who it is, where its depths lie, how to read its curves.

Every number passes through ``prep.sentinels.parse_number`` before it is stored, so a sentinel
(-999, -999.25, NA, None, NaN, empty) in a record is refused with the field named and never
reaches arithmetic.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tilecast.prep.sentinels import parse_number

Scale = Literal["linear", "log"]


def _number(value: Any, info: Any) -> float:
    return parse_number(value, field=info.field_name)


def _text(value: Any, info: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"{info.field_name} is missing")
    text = str(value).strip()
    if text == "" or text.upper() in {"NA", "N/A", "NONE", "NULL", "NAN", "-999", "-999.25"}:
        raise ValueError(f"{info.field_name} is missing: found {value!r}")
    return text


class CurveSpec(BaseModel):
    """One curve on the scan: its name and unit, and the values at the track's left/right edges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    unit: str
    left: float
    right: float
    scale: Scale = "linear"

    _name = field_validator("name", "unit", mode="before")(_text)
    _numbers = field_validator("left", "right", mode="before")(_number)

    @model_validator(mode="after")
    def _usable_scale(self) -> CurveSpec:
        if self.left == self.right:
            raise ValueError(f"curve {self.name}: left and right are both {self.left}")
        if self.scale == "log" and (self.left <= 0 or self.right <= 0):
            raise ValueError(
                f"curve {self.name}: a log scale needs left and right > 0, "
                f"found {self.left} and {self.right}"
            )
        return self


class ScanRecord(BaseModel):
    """The registration of one scan: identity, depth range along the width, and its curves.

    Depth runs along the image width: column 0 is ``top_depth``, the last column
    ``bottom_depth``. ``curves`` are in the model's class order (class k+1 is curves[k]).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scan_uri: str
    uwi: str
    scan_id: str
    top_depth: float
    bottom_depth: float
    depth_unit: Literal["m", "ft"]
    curves: tuple[CurveSpec, ...] = Field(min_length=1)

    _texts = field_validator("scan_uri", "uwi", "scan_id", mode="before")(_text)
    _numbers = field_validator("top_depth", "bottom_depth", mode="before")(_number)

    @field_validator("depth_unit", mode="before")
    @classmethod
    def _unit(cls, value: Any) -> Any:
        text = str(value).strip().lower() if value is not None else value
        return {"m": "m", "metre": "m", "meter": "m", "ft": "ft", "f": "ft", "feet": "ft"}.get(
            text, value
        )

    @model_validator(mode="after")
    def _depths(self) -> ScanRecord:
        if self.top_depth == self.bottom_depth:
            raise ValueError(f"top_depth and bottom_depth are both {self.top_depth}")
        names = [c.name for c in self.curves]
        if len(set(names)) != len(names):
            raise ValueError(f"curve names repeat: {names}")
        return self
