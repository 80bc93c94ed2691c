"""Curve extraction on hand-made probabilities: rows to values, columns to depth, gaps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tilecast.apps.welllog.axes import nice_step
from tilecast.apps.welllog.extract import centre_rows, extract_curves
from tilecast.apps.welllog.records import CurveSpec, ScanRecord
from tilecast.demo.welllog_metrics import compare, score_by_kind
from tilecast.demo.welllog_scan import generate_scan
from tilecast.errors import InputError, TilecastWarning

LINEAR = CurveSpec(name="GR", unit="gAPI", left=0, right=100, scale="linear")
LOG = CurveSpec(name="RES", unit="ohm.m", left=0.2, right=2000, scale="log")

pytestmark = pytest.mark.filterwarnings("ignore::tilecast.errors.TilecastWarning")


def record(top: float = 1000.0, bottom: float = 1010.0, curves=(LINEAR,)) -> ScanRecord:
    return ScanRecord(
        scan_uri="mem://scan",
        uwi="42-000-00001",
        scan_id="S1",
        top_depth=top,
        bottom_depth=bottom,
        depth_unit="ft",
        curves=curves,
    )


def probabilities(rows_per_column: list[int | None], *, height: int = 101, classes: int = 2):
    """One-hot probabilities with class 1 at one row per column (None: no curve there)."""
    width = len(rows_per_column)
    probs = np.zeros((classes, height, width), dtype=np.float32)
    probs[0] = 1.0
    for col, row in enumerate(rows_per_column):
        if row is not None:
            probs[:, row, col] = 0.0
            probs[1, row, col] = 1.0
    return probs


def test_rows_map_to_linear_values_left_at_the_bottom_row() -> None:
    rows = [100, 75, 50, 25, 0, 10, 20, 30, 40, 50, 60]
    probs = probabilities(rows)
    out = extract_curves(probs, np.ones(probs.shape[1:], bool), record(), step=1.0)
    assert np.array_equal(out.depth, np.arange(1000.0, 1011.0))
    assert out.step == 1.0 and out.depth_unit == "ft" and out.units == {"GR": "gAPI"}
    expected = [100 - r for r in rows]  # row 100 (last) is left = 0, row 0 is right = 100
    assert np.allclose(out.values["GR"], expected)


def test_log_scale_interpolates_in_decades() -> None:
    probs = probabilities([100, 50, 0, 25, 75])
    out = extract_curves(
        probs, np.ones(probs.shape[1:], bool), record(1000, 1004, (LOG,)), step=1.0
    )
    assert np.allclose(out.values["RES"], [0.2, 20.0, 2000.0, 200.0, 2.0])


def test_centre_is_the_probability_weighted_centroid_of_the_heaviest_run() -> None:
    prob = np.zeros((20, 3), dtype=np.float64)
    prob[4:7, 0] = [0.5, 1.0, 0.5]  # centroid 5
    prob[10:12, 1] = [0.6, 0.9]  # centroid (10*0.6 + 11*0.9) / 1.5 = 10.6
    prob[2, 1] = 0.99  # a lighter, separate run
    prob[3, 2] = 0.4  # below threshold: no curve
    rows = centre_rows(prob, np.ones_like(prob, bool), threshold=0.5)
    assert rows[0] == pytest.approx(5.0)
    assert rows[1] == pytest.approx(10.6)
    assert np.isnan(rows[2])


def test_a_heavier_stray_mark_off_the_curve_loses_to_the_run_on_its_track() -> None:
    prob = np.zeros((100, 40), dtype=np.float64)
    prob[49:52, :] = [[0.6], [1.0], [0.6]]  # the curve, centre row 50
    prob[5:20, 17] = 1.0  # a text stroke: heavier (15) than the curve's run (2.2)
    prob[5:20, 30:32] = 1.0  # two neighbouring columns of it
    rows = centre_rows(prob, np.ones_like(prob, bool), threshold=0.5)
    assert np.allclose(rows, 50.0)


def test_gaps_stay_gaps_and_are_never_bridged() -> None:
    rows = [50, 50, 50, None, 50, 50, None, None, 50, 50, 50]
    probs = probabilities(rows)
    rec = record(1000.0, 1005.0)  # 0.5 ft per column
    out = extract_curves(probs, np.ones(probs.shape[1:], bool), rec, step=0.75)
    columns = (out.depth - 1000.0) / 0.5
    gap_columns = {3, 6, 7}
    for col, value in zip(columns, out.values["GR"], strict=True):
        touches_gap = {int(np.floor(col)), int(np.ceil(col))} & gap_columns
        assert np.isnan(value) == bool(touches_gap), (col, value)
    assert out.counts["gap_columns[GR]"] == 3


def test_masked_pixels_on_or_next_to_the_curve_make_a_gap() -> None:
    rows = [40] * 6
    probs = probabilities(rows)
    valid = np.ones(probs.shape[1:], bool)
    valid[40, 1] = False  # on the curve
    valid[41, 2] = False  # right next to it: the curve may continue under the mask
    valid[:10, 3] = False  # far from it: the curve is still read
    valid[:, 4] = False  # the whole column
    out = extract_curves(probs, valid, record(1000, 1005), step=1.0)
    gr = out.values["GR"]
    assert np.isnan(gr[[1, 2, 4]]).all()
    assert np.allclose(gr[[0, 3, 5]], 60.0)


def test_scan_running_upwards_has_a_negative_step() -> None:
    probs = probabilities([100, 50, 0])
    rec = record(top=1002.0, bottom=1000.0)
    out = extract_curves(probs, np.ones(probs.shape[1:], bool), rec)
    assert out.step == -1.0
    assert np.array_equal(out.depth, [1002.0, 1001.0, 1000.0])
    assert np.allclose(out.values["GR"], [0.0, 50.0, 100.0])
    with pytest.raises(InputError, match="must be negative"):
        extract_curves(probs, np.ones(probs.shape[1:], bool), rec, step=0.5)


def test_default_step_is_a_nice_number_no_finer_than_a_column() -> None:
    assert nice_step(0.1) == 0.1
    assert nice_step(0.125) == 0.2
    assert nice_step(0.3) == 0.5
    assert nice_step(0.02) == 0.02
    assert nice_step(-0.07) == -0.1
    assert nice_step(3.0) == 5.0
    probs = probabilities([50] * 41)
    out = extract_curves(probs, np.ones(probs.shape[1:], bool), record(1000.0, 1005.0))
    assert out.step == 0.2  # 0.125 ft per column
    assert out.depth[0] == 1000.0 and out.depth[-1] == 1005.0 and out.depth.size == 26


def test_sizes_outside_the_band_warn_inside_do_not() -> None:
    probs = probabilities([50] * 5)
    with pytest.warns(TilecastWarning, match="outside the scan band"):
        extract_curves(probs, np.ones(probs.shape[1:], bool), record(1000, 1004))
    inside = np.zeros((2, 480, 3200), np.float32)
    inside[1, 200, :] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", TilecastWarning)
        out = extract_curves(inside, np.ones((480, 3200), bool), record(1000, 1319.9))
    assert np.isfinite(out.values["GR"]).all()


def test_more_curves_than_the_model_has_classes_is_refused() -> None:
    probs = probabilities([50] * 5)
    with pytest.raises(InputError, match="1 curve class"):
        extract_curves(probs, np.ones(probs.shape[1:], bool), record(1000, 1004, (LINEAR, LOG)))


def test_truth_masks_read_back_as_the_source_log() -> None:
    """Generator and extractor agree on the conventions: a perfect mask gives the source log."""
    scan = generate_scan(8, width=3300, height=500, n_curves=2, missing=True)
    mask = scan.truth.mask
    probs = np.stack([mask == 0, mask == 1, mask == 2]).astype(np.float32)
    out = extract_curves(probs, mask != 255, scan.record)
    scores = score_by_kind(compare(out, scan.record, scan.truth))
    for kind, s in scores.items():
        assert s.within_division > 0.98, (kind, s)
        assert s.gap_agreement > 0.98, (kind, s)
    assert scores["GR (gAPI, linear)"].median_abs_error < 0.5
    assert scores["RES (ohm.m, log)"].median_abs_error_decades < 0.01
