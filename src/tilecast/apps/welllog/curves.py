"""The digitised curves of one scan on a regular depth index: what the write-back commits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DigitisedCurves:
    """Curves on a regular depth index; NaN marks a gap (no curve found at that depth).

    ``depth`` runs from the record's top to bottom depth by ``step`` (negative when the scan
    runs upwards); ``values[name]`` has the same length as ``depth``. ``registration`` records
    how pixels were mapped (columns to depth, rows to value per curve) for qc.json.
    """

    depth: np.ndarray  # float64 (N,)
    step: float
    depth_unit: str
    values: Mapping[str, np.ndarray]  # float64 (N,) per curve, NaN where there is a gap
    units: Mapping[str, str]
    counts: Mapping[str, int] = field(default_factory=dict)  # masked pixels etc. for qc.json
    registration: Mapping[str, object] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.values)
