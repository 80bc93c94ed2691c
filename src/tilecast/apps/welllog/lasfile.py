"""LAS 2.0 text for the digitised curves of one scan, built with lasio.

The file a downstream petrophysics reader opens: ``~V`` VERS 2.0, WRAP NO; ``~W`` STRT, STOP and
STEP in the depth unit (STEP negative when depth decreases along the scan), NULL -999.25 and
the other items LAS 2.0 requires; ``~C`` the depth index ``DEPT`` first, then every curve with
its unit; ``~P`` where the curves came from; ``~A`` the data, gaps written as -999.25. Nothing
depends on the clock, so the same curves always give the same bytes.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

import lasio
import numpy as np

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.records import ScanRecord
from tilecast.errors import InputError

LAS_NULL = -999.25
VALUE_FORMAT = "%.5f"
SERVICE = "tilecast welllog digitiser"
LAS_DEPTH_UNITS = {"m": "M", "ft": "FT"}
DEPTH_MNEMONIC = "DEPT"
MAX_DEPTH_DECIMALS = 6

# A mnemonic ends at the first period and a unit at the first space (LAS 2.0 section 5.3), and a
# colon separates the description: names and units must not hold those characters.
_MNEMONIC = re.compile(r"^[A-Za-z0-9_\-+/()\[\]#%]+$")
_UNIT = re.compile(r"^[!-9;-~]*$")  # printable ASCII, no space or colon


def check_curve_names(record: ScanRecord) -> None:
    """InputError naming the curve when its name or unit cannot be written into a LAS header."""
    for curve in record.curves:
        if not _MNEMONIC.match(curve.name) or curve.name.upper() == DEPTH_MNEMONIC:
            raise InputError(
                f"curve name {curve.name!r} cannot be a LAS mnemonic: expected letters, digits "
                f"and _-+/()[]#% only (no spaces, '.' or ':'), and not {DEPTH_MNEMONIC}"
            )
        if not _UNIT.match(curve.unit):
            raise InputError(
                f"curve {curve.name}: unit {curve.unit!r} cannot be a LAS unit "
                "(printable ASCII without spaces or ':')"
            )


def depth_decimals(step: float, start: float) -> int:
    """The fewest decimals (up to 6) that write ``step`` and ``start`` exactly."""
    for decimals in range(MAX_DEPTH_DECIMALS + 1):
        if all(abs(round(x, decimals) - x) <= 1e-9 * max(1.0, abs(x)) for x in (step, start)):
            return decimals
    return MAX_DEPTH_DECIMALS


def check_curves(curves: DigitisedCurves, record: ScanRecord) -> None:
    """InputError when the curves do not fit the record or cannot be written as LAS."""
    depth = np.asarray(curves.depth, dtype=np.float64)
    if depth.ndim != 1 or depth.size < 2:
        raise InputError(f"depth must be a 1-D index of >= 2 samples, got shape {depth.shape}")
    if not np.all(np.isfinite(depth)):
        raise InputError(f"depth holds {int((~np.isfinite(depth)).sum())} non-finite value(s)")
    if not math.isfinite(curves.step) or curves.step == 0:
        raise InputError(f"step must be a finite non-zero number, got {curves.step}")
    steps = np.diff(depth)
    if not np.allclose(steps, curves.step, rtol=0, atol=1e-6 * abs(curves.step)):
        raise InputError(
            f"depth is not regular with step {curves.step}: steps range "
            f"{steps.min()}..{steps.max()}"
        )
    if curves.depth_unit != record.depth_unit:
        raise InputError(
            f"curves are in {curves.depth_unit!r}, the registration says {record.depth_unit!r}"
        )
    names = [c.name for c in record.curves]
    if curves.names != names:
        raise InputError(f"curves are {curves.names}, the registration lists {names}")
    for name in names:
        values = np.asarray(curves.values[name])
        if values.shape != depth.shape:
            raise InputError(f"curve {name} has shape {values.shape}, depth has {depth.shape}")
        finite = values[np.isfinite(values)]
        if np.any(np.round(finite, 5) == LAS_NULL):
            raise InputError(f"curve {name} holds the LAS NULL value {LAS_NULL} as a reading")
        if np.any(np.isinf(values)):
            raise InputError(f"curve {name} holds infinite values")


def las_text(
    curves: DigitisedCurves,
    record: ScanRecord,
    *,
    parameters: Sequence[tuple[str, str, str]] = (),
) -> str:
    """The LAS 2.0 file of one scan's curves.

    ``parameters`` are extra ``~P`` items as (mnemonic, value, description), after ``SCAN``.
    """
    check_curve_names(record)
    check_curves(curves, record)
    unit = LAS_DEPTH_UNITS[record.depth_unit]
    decimals = depth_decimals(curves.step, float(curves.depth[0]))
    depth = np.round(np.asarray(curves.depth, dtype=np.float64), decimals)

    las = lasio.LASFile()
    del las.version["DLM"]  # not a LAS 2.0 item
    well = {
        "NULL": LAS_NULL,
        "COMP": "",
        "WELL": record.uwi,
        "FLD": "",
        "LOC": "",
        "SRVC": SERVICE,
        "DATE": "",
        "UWI": record.uwi,
    }
    for mnemonic, value in well.items():
        las.well[mnemonic].value = value
    las.params.append(lasio.HeaderItem("SCAN", "", record.scan_id, "SCAN ID"))
    for mnemonic, value, description in parameters:
        las.params.append(lasio.HeaderItem(mnemonic, "", value, description))
    las.append_curve(DEPTH_MNEMONIC, depth, unit=unit, descr="DEPTH")
    for spec in record.curves:
        values = np.asarray(curves.values[spec.name], dtype=np.float64)
        las.append_curve(
            spec.name, values, unit=spec.unit, descr=f"{spec.name} ({spec.scale} scale)"
        )
    buffer = io.StringIO()
    las.write(
        buffer,
        version=2.0,
        wrap=False,
        STRT=float(depth[0]),
        STOP=float(depth[-1]),
        STEP=round(float(curves.step), decimals),
        fmt=VALUE_FORMAT,
        column_fmt={0: f"%.{decimals}f"},
    )
    return buffer.getvalue()
