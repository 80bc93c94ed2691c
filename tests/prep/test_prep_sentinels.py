"""Sentinel guard: masks are False exactly where sentinels were put, counts are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilecast.errors import InputError, SentinelError
from tilecast.prep import (
    DEFAULT_SENTINEL_VALUES,
    GuardResult,
    SentinelPolicy,
    guard_pixels,
    is_sentinel,
    parse_number,
)

NODATA = -32768.0
# Every kind of sentinel, keyed by its reason, in the order the guard tries them.
KINDS: dict[str, float] = {
    "nan": math.nan,
    "+inf": math.inf,
    "-inf": -math.inf,
    "nodata": NODATA,
    "-999.0": -999.0,
    "-999.25": -999.25,
    "-9999.0": -9999.0,
}
ORDER = list(KINDS)


@st.composite
def dirty_images(draw: st.DrawFn, dtype: type = np.float32):
    """A clean image (values in [-100, 100], never a sentinel) plus sentinels placed at random
    (channel, y, x) positions; returns the image and {(y, x): [reasons placed there]}."""
    c = draw(st.integers(1, 4))
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    image = np.random.default_rng(seed).uniform(-100, 100, size=(c, h, w)).astype(dtype)
    n = draw(st.integers(0, c * h * w))
    for _ in range(n):
        ci, y, x = (
            draw(st.integers(0, c - 1)),
            draw(st.integers(0, h - 1)),
            draw(st.integers(0, w - 1)),
        )
        kind = draw(st.sampled_from(ORDER))
        image[ci, y, x] = KINDS[kind]
    return image, placed_in(image)


def placed_in(image: np.ndarray) -> dict[tuple[int, int], list[str]]:
    """{(y, x): reasons that invalidate the pixel}, recomputed from the final image (a later
    placement may overwrite an earlier one). NoData counts only where every channel holds it
    (GDAL's rule); every other sentinel in any channel."""
    planes = image if image.ndim == 3 else image[np.newaxis]
    c, h, w = planes.shape
    placed: dict[tuple[int, int], list[str]] = {}
    for y in range(h):
        for x in range(w):
            kinds = []
            for kind in ORDER:
                hits = [_matches(float(planes[ci, y, x]), kind) for ci in range(c)]
                if all(hits) if kind == "nodata" else any(hits):
                    kinds.append(kind)
            if kinds:
                placed[(y, x)] = kinds
    return placed


@settings(max_examples=150, deadline=None)
@given(case=dirty_images(), dtype=st.sampled_from([np.float32, np.float64]), planar=st.booleans())
def test_mask_is_false_exactly_at_sentinels(case, dtype, planar: bool) -> None:
    image, _ = case
    image = image.astype(dtype)
    if planar:  # an (H, W) image: keep channel 0 only
        image = image[0]
    placed = placed_in(image)  # in the dtype's own precision
    result = guard_pixels(image, nodata=NODATA)
    h, w = image.shape[-2:]
    expected_valid = np.ones((h, w), dtype=bool)
    expected_counts: dict[str, int] = {}
    for yx, kinds in placed.items():
        expected_valid[yx] = False
        first = min(kinds, key=ORDER.index)
        expected_counts[first] = expected_counts.get(first, 0) + 1
    assert result.valid.dtype == np.bool_
    assert result.valid.shape == (h, w)
    np.testing.assert_array_equal(result.valid, expected_valid)
    assert dict(result.counts) == expected_counts
    assert sum(result.counts.values()) == result.n_invalid == len(placed)
    assert result.n_valid + result.n_invalid == h * w
    assert result.fraction_valid == pytest.approx(result.n_valid / (h * w))


def _matches(v: float, kind: str) -> bool:
    s = KINDS[kind]
    return (math.isnan(s) and math.isnan(v)) or v == s


def test_first_reason_wins_and_counts_sum() -> None:
    image = np.array(
        [
            [[1, -999, np.nan], [np.inf, -np.inf, -9999]],
            [[0, 0, -999.25], [5, 5, 7]],
        ],
        dtype=np.float32,
    )
    result = guard_pixels(image, nodata=7)
    np.testing.assert_array_equal(result.valid, [[True, False, False], [False, False, False]])
    # (0, 2) holds NaN and -999.25: counted as nan; (1, 2) holds -9999 and NoData in one band
    # only: NoData does not invalidate it (GDAL's rule), -9999 does.
    assert dict(result.counts) == {"nan": 1, "+inf": 1, "-inf": 1, "-9999.0": 1, "-999.0": 1}
    assert result.counts["nan"] == 1
    assert result.n_invalid == 5 and result.n_valid == 1
    # NoData in every band: counted as nodata
    assert dict(guard_pixels(np.full((2, 1, 1), 7, np.float32), nodata=7).counts) == {"nodata": 1}


def test_counts_cannot_be_modified() -> None:
    result = guard_pixels(np.array([[np.nan, 1.0]]))
    with pytest.raises(TypeError):
        result.counts["nan"] = 0  # type: ignore[index]
    assert isinstance(result, GuardResult) and result.counts["nan"] == 1


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), c=st.integers(1, 3), n_zero=st.integers(0, 30))
def test_uint8_with_nodata_zero(seed: int, c: int, n_zero: int) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(1, 256, size=(c, 6, 5), dtype=np.uint8)
    flat = rng.integers(0, image.size, size=n_zero)
    image.reshape(-1)[flat] = 0
    result = guard_pixels(image, nodata=0)
    expected = ~(image == 0).all(axis=0)  # GDAL: invalid only when every band is NoData
    np.testing.assert_array_equal(result.valid, expected)
    assert dict(result.counts) == ({"nodata": int((~expected).sum())} if (~expected).any() else {})


def test_uint8_cannot_hold_negative_sentinels() -> None:
    image = np.full((3, 4, 4), 255, dtype=np.uint8)  # 255 == -999 wrapped? must not match
    image[0, 0, 0] = np.uint8(np.int64(-999) % 256)
    result = guard_pixels(image)
    assert result.valid.all()
    assert dict(result.counts) == {}


def test_integer_image_matches_representable_sentinels_only() -> None:
    image = np.array([[-999, -9999, 3, 7]], dtype=np.int16)
    result = guard_pixels(image, nodata=7)
    np.testing.assert_array_equal(result.valid, [[False, False, True, False]])
    assert dict(result.counts) == {"-999.0": 1, "-9999.0": 1, "nodata": 1}
    # Nodata that the dtype cannot hold is skipped, not an error.
    assert guard_pixels(image, nodata=-1e9).n_invalid == 2
    assert guard_pixels(image, nodata=2.5).n_invalid == 2


def test_float32_compares_in_its_own_precision() -> None:
    # A raster with float32 NoData -3.4028235e38 (rasterio reports it as a float64).
    nodata = float(np.finfo(np.float32).min)
    image = np.array([[nodata, -999.25, 1.0]], dtype=np.float32)
    result = guard_pixels(image, nodata=nodata)
    assert dict(result.counts) == {"nodata": 1, "-999.25": 1}


def test_nan_nodata_counts_as_nan_even_if_policy_ignores_nan() -> None:
    image = np.array([[np.nan, 1.0]], dtype=np.float32)
    assert guard_pixels(image, policy=SentinelPolicy(nan=False)).n_invalid == 0
    result = guard_pixels(image, policy=SentinelPolicy(nan=False), nodata=math.nan)
    assert dict(result.counts) == {"nan": 1}


def test_object_arrays_from_records() -> None:
    image = np.array(
        [[None, "NA", "", " -999.25 ", "abc"], ["3.5", 2, np.float32(-999.0), float("nan"), "7"]],
        dtype=object,
    )
    result = guard_pixels(image)
    np.testing.assert_array_equal(
        result.valid, [[False, False, False, False, False], [True, True, False, False, True]]
    )
    assert dict(result.counts) == {
        "None": 1,
        "'NA'": 1,
        "''": 1,
        "nan": 1,
        "-999.0": 1,
        "-999.25": 1,
        "not a number": 1,
    }
    assert sum(result.counts.values()) == result.n_invalid == 7
    # Multi-channel object array: a pixel is invalid when any channel is.
    stacked = np.stack([image, np.full(image.shape, "1", dtype=object)])
    np.testing.assert_array_equal(guard_pixels(stacked).valid, result.valid)


def test_string_array_with_nodata() -> None:
    image = np.array([["1", "N/A", "-32768"]])
    result = guard_pixels(image, nodata=NODATA)
    assert dict(result.counts) == {"'N/A'": 1, "nodata": 1}


def test_guard_refuses_wrong_shapes_and_dtypes() -> None:
    with pytest.raises(InputError, match=r"\(C, H, W\).*\(4,\)"):
        guard_pixels(np.zeros(4))
    with pytest.raises(InputError, match="complex"):
        guard_pixels(np.zeros((2, 2), dtype=np.complex64))


@pytest.mark.parametrize(
    "value",
    [
        None,
        "NA",
        "N/A",
        "",
        "   ",
        " -999.25 ",
        "-9999",
        "null",
        "nan",
        "inf",
        float("nan"),
        float("-inf"),
        -999,
        np.float32(-999),
        np.float32(-999.25),
        np.float64(-9999.0),
        np.int16(-999),
    ],
)
def test_is_sentinel_true(value: object) -> None:
    assert is_sentinel(value) is True


@pytest.mark.parametrize(
    "value", ["3.5", " 12 ", 0, 0.0, -999.5, np.float32(-999.5), "abc", True, 1e300]
)
def test_is_sentinel_false(value: object) -> None:
    assert is_sentinel(value) is False


def test_is_sentinel_follows_the_policy() -> None:
    assert is_sentinel(float("nan"), policy=SentinelPolicy(nan=False)) is False
    assert is_sentinel(float("inf"), policy=SentinelPolicy(inf=False)) is False
    assert is_sentinel(-1.0, policy=SentinelPolicy(values=(-1.0,))) is True
    assert is_sentinel(-999.0, policy=SentinelPolicy(values=())) is False
    assert is_sentinel("missing", policy=SentinelPolicy(strings=("missing",))) is True
    assert is_sentinel(0.0, policy=SentinelPolicy().with_nodata(0.0)) is True


def test_with_nodata() -> None:
    base = SentinelPolicy()
    assert base.with_nodata(None) is base
    assert base.with_nodata(-999.0) is base  # already there
    assert base.with_nodata(0).values == (*DEFAULT_SENTINEL_VALUES, 0.0)
    no_nan = SentinelPolicy(nan=False)
    assert no_nan.with_nodata(math.nan).nan is True
    assert no_nan.with_nodata(math.nan).values == DEFAULT_SENTINEL_VALUES
    assert base.with_nodata(0) == SentinelPolicy(values=(*DEFAULT_SENTINEL_VALUES, 0.0))
    assert hash(base.with_nodata(0)) == hash(SentinelPolicy(values=(-999, -999.25, -9999, 0)))


def test_policy_refuses_non_finite_values() -> None:
    with pytest.raises(InputError, match="nan"):
        SentinelPolicy(values=(math.nan,))


def test_parse_number_returns_finite_floats() -> None:
    assert parse_number(" 1500.5 ", field="top_depth") == 1500.5
    assert parse_number(np.float32(2.5), field="top_depth") == 2.5
    assert parse_number(3, field="step") == 3.0
    assert isinstance(parse_number(3, field="step"), float)


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("NA", r"^top_depth is missing: found 'NA' \(a sentinel\)$"),
        (None, r"^top_depth is missing: found None \(a sentinel\)$"),
        (" -999.25 ", r"^top_depth is missing: found ' -999.25 ' \(a sentinel\)$"),
        (np.float32(-999), r"^top_depth is missing: found -999.0 \(a sentinel\)$"),
        (float("nan"), r"^top_depth is missing: found nan"),
        ("abc", r"^top_depth is not a number: found 'abc', expected a number$"),
        (True, r"found True, expected a number"),
        ([1.0], r"found \[1.0\], expected a number"),
    ],
)
def test_parse_number_names_field_and_value(value: object, pattern: str) -> None:
    with pytest.raises(SentinelError, match=pattern):
        parse_number(value, field="top_depth")


def test_parse_number_refuses_non_finite_even_when_policy_allows_it() -> None:
    with pytest.raises(SentinelError, match="not finite"):
        parse_number("inf", field="scale", policy=SentinelPolicy(inf=False))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_guard_never_copies_the_image_to_float(dtype) -> None:
    import tracemalloc

    image = np.ones((3, 512, 512), dtype=dtype)
    tracemalloc.start()
    try:
        result = guard_pixels(image, nodata=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.n_valid == 512 * 512
    # A few (H, W) boolean planes only: under 2 bytes per element of the image,
    # where a float64 copy would cost 8 bytes per element.
    assert peak < 2 * image.size
