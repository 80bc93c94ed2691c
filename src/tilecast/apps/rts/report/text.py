"""How numbers, counts, dates and run-log values read in the QC report (plain text, unescaped).

Shared by the verdict (:mod:`.checks`) and the page (:mod:`.html`, :mod:`.sections`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any


def fmt_area(m2: float) -> str:
    if not math.isfinite(m2):
        return "n/a"
    if m2 >= 10_000:
        return f"{m2:,.0f} m² ({m2 / 10_000:.2f} ha)"
    return f"{m2:,.0f} m²"


def fmt_num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def fmt_date(value: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM`` (UTC when it says so); as given otherwise."""
    if not value:
        return "—"
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if when.tzinfo is not None:
        return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return when.strftime("%Y-%m-%d %H:%M")


def fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"


def fmt_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {fmt_value(v)}" for k, v in value.items()) or "{}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value) or "[]"
    return str(value)


def fmt_scales(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(f"{float(v):g}" for v in value)
    return fmt_value(value)
