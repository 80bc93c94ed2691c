"""LAS 2.0 write-back, proven by the downstream readers: lasio reads it back, lascheck finds it
conformant, depth is never null, gaps are exactly where the curves had NaN."""

from __future__ import annotations

import lascheck
import lasio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from welllog_support import GR, RES, las_problems, record

from tilecast.apps.welllog.curves import DigitisedCurves
from tilecast.apps.welllog.lasfile import LAS_NULL, check_curve_names, las_text
from tilecast.apps.welllog.records import CurveSpec
from tilecast.errors import InputError


def curves_for(rec, *, step: float, gaps: dict[str, np.ndarray] | None = None, seed: int = 0):
    n = round((rec.bottom_depth - rec.top_depth) / step) + 1
    depth = np.round(rec.top_depth + np.arange(n) * step, 9)
    rng = np.random.default_rng(seed)
    values = {}
    for spec in rec.curves:
        lo, hi = sorted((spec.left, spec.right))
        v = rng.uniform(lo, hi, n) if spec.scale == "linear" else np.exp(
            rng.uniform(np.log(lo), np.log(hi), n)
        )  # fmt: skip
        if gaps and spec.name in gaps:
            v[gaps[spec.name]] = np.nan
        values[spec.name] = v
    return DigitisedCurves(
        depth=depth,
        step=step,
        depth_unit=rec.depth_unit,
        values=values,
        units={c.name: c.unit for c in rec.curves},
    )


def read_back(text: str) -> lasio.LASFile:
    assert las_problems(text) == []
    return lasio.read(text)


@pytest.mark.parametrize(
    ("top", "bottom", "unit", "step", "las_unit"),
    [
        (1000.0, 1127.5, "ft", 0.05, "FT"),  # depth increasing along the scan
        (2500.0, 2380.0, "m", -0.025, "M"),  # a scan that runs upwards: negative STEP
    ],
)
def test_las_reads_back_with_registration_depths_units_and_gaps(top, bottom, unit, step, las_unit):
    rec = record(top=top, bottom=bottom, unit=unit)
    n = round((bottom - top) / step) + 1
    gr_gap = np.zeros(n, dtype=bool)
    gr_gap[[0, 5, 6, 7, n - 1]] = True  # gaps at both ends and inside
    res_gap = np.zeros(n, dtype=bool)
    res_gap[100:400] = True
    curves = curves_for(rec, step=step, gaps={"GR": gr_gap, "RES": res_gap})

    las = read_back(las_text(curves, rec))

    assert las.version["VERS"].value == 2.0
    assert las.version["WRAP"].value == "NO"
    well = las.well
    assert (well["STRT"].value, well["STOP"].value, well["STEP"].value) == (top, bottom, step)
    assert well["STRT"].unit == well["STOP"].unit == well["STEP"].unit == las_unit
    assert well["NULL"].value == LAS_NULL
    assert well["UWI"].value == rec.uwi and well["WELL"].value == rec.uwi
    for item in ("COMP", "FLD", "LOC", "SRVC", "DATE"):
        assert item in well
    assert las.params["SCAN"].value == rec.scan_id

    assert [c.mnemonic for c in las.curves] == ["DEPT", "GR", "RES"]
    assert [c.unit for c in las.curves] == [las_unit, "gAPI", "ohm.m"]
    depth = las.index
    assert not np.isnan(depth).any()  # depth is never null
    np.testing.assert_allclose(depth, curves.depth, atol=1e-9)
    assert np.array_equal(np.isnan(las["GR"]), gr_gap)
    assert np.array_equal(np.isnan(las["RES"]), res_gap)
    for name in ("GR", "RES"):
        ok = ~np.isnan(curves.values[name])
        np.testing.assert_allclose(las[name][ok], curves.values[name][ok], atol=5e-6)


def test_gaps_are_written_as_the_null_value_in_the_data_section():
    rec = record(curves=(GR,))
    gap = np.zeros(round(127.5 / 0.5) + 1, dtype=bool)
    gap[3] = True
    text = las_text(curves_for(rec, step=0.5, gaps={"GR": gap}), rec)
    data = text.split("~ASCII")[1].splitlines()[1:]
    assert data[3].split()[1] == "-999.25"
    assert sum("-999.25" in row for row in data) == 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.booleans(), min_size=21, max_size=21))
def test_any_gap_pattern_survives_the_round_trip(pattern):
    rec = record(top=100.0, bottom=102.0, unit="m", curves=(RES,))
    gaps = np.array(pattern)
    curves = curves_for(rec, step=0.1, gaps={"RES": gaps})
    las = lasio.read(las_text(curves, rec))
    assert np.array_equal(np.isnan(las["RES"]), gaps)
    assert not np.isnan(las.index).any()


def test_same_curves_give_the_same_bytes():
    rec = record()
    curves = curves_for(rec, step=0.05, seed=4)
    assert las_text(curves, rec) == las_text(curves_for(rec, step=0.05, seed=4), rec)


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("G R", "gAPI", "curve name 'G R'"),
        ("GR.1", "gAPI", "curve name 'GR.1'"),
        ("DEPT", "m", "curve name 'DEPT'"),
        ("GR", "g API", "unit 'g API'"),
        ("GR", "a:b", "unit 'a:b'"),
    ],
)
def test_names_and_units_that_would_break_the_header_are_refused(name, unit, expected):
    rec = record(curves=(CurveSpec(name=name, unit=unit, left=0, right=1),))
    with pytest.raises(InputError, match=expected):
        check_curve_names(rec)


def test_null_depth_is_refused():
    rec = record(curves=(GR,))
    curves = curves_for(rec, step=0.5)
    depth = curves.depth.copy()
    depth[4] = np.nan
    bad = DigitisedCurves(
        depth=depth, step=0.5, depth_unit="ft", values=curves.values, units=curves.units
    )
    with pytest.raises(InputError, match="non-finite"):
        las_text(bad, rec)


def test_curves_that_do_not_match_the_registration_are_refused():
    rec = record(curves=(GR,))
    curves = curves_for(record(curves=(RES,)), step=0.5)
    with pytest.raises(InputError, match=r"curves are \['RES'\]"):
        las_text(curves, rec)
    metres = curves_for(rec, step=0.5)
    with pytest.raises(InputError, match="'ft'"):
        las_text(metres, record(curves=(GR,), unit="m"))


def test_a_reading_equal_to_the_null_value_is_refused():
    spec = CurveSpec(name="SP", unit="mV", left=-1000.0, right=0.0)
    rec = record(curves=(spec,))
    curves = curves_for(rec, step=0.5)
    curves.values["SP"][2] = -999.25
    with pytest.raises(InputError, match="NULL"):
        las_text(curves, rec)


def test_decimal_multiples_of_the_step_conform_despite_lascheck_float_rounding():
    rec = record(top=2359.95, bottom=2200.0, curves=(GR,))  # 2359.95 = 47199 x 0.05 exactly
    text = las_text(curves_for(rec, step=-0.05), rec)
    raw = lascheck.read(text)
    assert not raw.check_conformity()  # lascheck's float modulo: 2359.95 * 100 = 235994.999...
    assert raw.get_non_conformities() == ["STRT divided by step is not a whole number"]
    assert las_problems(text) == []
    off_grid = record(top=1000.03, bottom=1001.03, curves=(GR,))  # not a multiple of 0.05
    assert las_problems(las_text(curves_for(off_grid, step=0.05), off_grid)) == [
        "STRT divided by step is not a whole number",
        "STOP divided by step is not a whole number",
    ]
