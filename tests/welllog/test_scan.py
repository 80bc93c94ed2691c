"""The synthetic well-log scans: sizes, determinism, missing pixels, gaps and truth."""

from __future__ import annotations

import numpy as np
import pytest

from tilecast.apps.welllog.axes import column_depths
from tilecast.demo.welllog_scan import (
    HEIGHT_RANGE,
    MASK_MISSING,
    MISSING_PIXEL,
    SOURCE_NULL,
    WIDTH_RANGE,
    generate_scan,
    truth_from_bytes,
    truth_to_bytes,
    values_at_columns,
)
from tilecast.errors import InputError


@pytest.mark.parametrize("seed", [0, 7, 50001])
def test_default_sizes_lie_in_the_scan_band(seed: int) -> None:
    scan = generate_scan(seed)
    assert scan.image.dtype == np.uint8 and scan.image.ndim == 2
    assert WIDTH_RANGE[0] <= scan.width <= WIDTH_RANGE[1]
    assert HEIGHT_RANGE[0] <= scan.height <= HEIGHT_RANGE[1]
    assert scan.truth.mask.shape == scan.image.shape
    assert 1 <= len(scan.record.curves) <= 2


def test_same_seed_same_scan_other_seed_other_scan() -> None:
    a = generate_scan(11, width=900, height=200)
    b = generate_scan(11, width=900, height=200)
    c = generate_scan(12, width=900, height=200)
    assert np.array_equal(a.image, b.image)
    assert a.record == b.record
    assert np.array_equal(a.truth.mask, b.truth.mask)
    for name in a.truth.values:
        assert np.array_equal(a.truth.values[name], b.truth.values[name], equal_nan=True)
    assert not np.array_equal(a.image, c.image)


def test_record_registers_depth_along_the_width() -> None:
    scan = generate_scan(3, width=1000, height=300)
    record = scan.record
    depth = column_depths(record, scan.width)
    assert depth[0] == record.top_depth
    assert depth[-1] == pytest.approx(record.bottom_depth)
    assert np.array_equal(scan.truth.depth, depth)
    names = {c.name: c for c in record.curves}
    if "GR" in names:
        assert (names["GR"].left, names["GR"].right, names["GR"].scale) == (0, 150, "linear")
    if "RES" in names:
        assert (names["RES"].left, names["RES"].right, names["RES"].scale) == (0.2, 2000, "log")


def test_some_scans_run_upwards() -> None:
    upward = [
        s
        for s in range(40)
        if (r := generate_scan(s, width=300, height=100).record) and r.top_depth > r.bottom_depth
    ]
    assert upward, "no scan out of 40 runs upwards"


def test_missing_pixels_are_zero_and_nothing_else_is() -> None:
    torn = generate_scan(5, width=1200, height=300, missing=True)
    lost = torn.image == MISSING_PIXEL
    assert lost.any()
    assert np.array_equal(torn.truth.mask == MASK_MISSING, lost)
    clean = generate_scan(5, width=1200, height=300, missing=False)
    assert not (clean.image == MISSING_PIXEL).any()
    assert not (clean.truth.mask == MASK_MISSING).any()
    assert not any(h.any() for h in clean.truth.hidden.values())


def test_hidden_columns_are_where_missing_pixels_touch_the_curve() -> None:
    scan = generate_scan(5, width=1200, height=300, missing=True)
    lost_columns = (scan.image == MISSING_PIXEL).any(axis=0)
    for name, hidden in scan.truth.hidden.items():
        assert not (hidden & ~lost_columns).any(), f"{name} hidden where nothing is missing"


def test_curves_are_drawn_only_where_the_source_has_data() -> None:
    scan = generate_scan(21, width=4000, height=480, n_curves=2, missing=False)
    for k, spec in enumerate(scan.record.curves):
        drawn = (scan.truth.mask == k + 1).any(axis=0)
        gap = np.isnan(scan.truth.values[spec.name])
        assert not (drawn & gap).any(), f"{spec.name} drawn in a source gap"
        assert drawn[~gap].mean() > 0.97  # the other curve covers it only at crossings


def test_truth_values_follow_the_source_and_its_nulls() -> None:
    scan = generate_scan(2, width=2000, height=500)
    truth = scan.truth
    for name, source in truth.source_values.items():
        assert (source == SOURCE_NULL).any() or not np.isnan(truth.values[name]).any()
        expected = values_at_columns(truth.source_depth, source, truth.depth)
        assert np.array_equal(expected, truth.values[name], equal_nan=True)
        assert not np.any(truth.values[name] == SOURCE_NULL)


def test_values_at_columns_never_bridges_a_null() -> None:
    depth = np.arange(6, dtype=np.float64)
    source = np.array([1.0, 2.0, SOURCE_NULL, 4.0, 5.0, 6.0])
    found = values_at_columns(depth, source, np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]))
    assert np.array_equal(found, [1.5, 2.0, np.nan, np.nan, np.nan, 4.0, 4.5], equal_nan=True)


def test_truth_round_trips_through_bytes() -> None:
    scan = generate_scan(4, width=700, height=200, missing=True)
    back = truth_from_bytes(truth_to_bytes(scan.truth, with_mask=True))
    assert np.array_equal(back.depth, scan.truth.depth)
    assert np.array_equal(back.mask, scan.truth.mask)
    for name in scan.truth.values:
        assert np.array_equal(back.values[name], scan.truth.values[name], equal_nan=True)
        assert np.array_equal(back.hidden[name], scan.truth.hidden[name])
        assert np.array_equal(back.source_values[name], scan.truth.source_values[name])


def test_bad_requests_are_refused() -> None:
    with pytest.raises(InputError, match="1 or 2 curves"):
        generate_scan(1, width=300, height=100, n_curves=3)
    with pytest.raises(InputError, match="at least 64"):
        generate_scan(1, width=30, height=100)
