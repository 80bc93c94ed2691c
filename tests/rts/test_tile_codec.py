"""The tile encodings' arithmetic: round-trip bound, monotone codes, NoData, exact scales, and
what a reader refuses. Pure: no files (the files are in test_tile_encoding.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tilecast.apps.rts.tile_codec import (
    ENCODING_TAG,
    SCALE_CODES_TAG,
    TILE_ENCODINGS,
    TILE_NODATA,
    encode_tile,
    get_encoding,
    quantise,
    tile_format,
)
from tilecast.errors import InputError, UnknownNameError
from tilecast.merge import PROB_NODATA, check_tile_values

QUANTISED = ["uint16", "uint8"]
SCALES = (1.0, 0.5)

probabilities = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 6), st.integers(1, 40)),
    elements=st.floats(0.0, 1.0, width=32),
)


def read_back(name: str, scales=SCALES):
    """The format a reader gets from the header a writer of ``name`` records."""
    fmt = get_encoding(name).format_for(scales)
    return tile_format(
        dtypes=(fmt.encoding.dtype,) * 2,
        nodata=fmt.encoding.nodata,
        scales=fmt.band_scales,
        offsets=fmt.band_offsets,
        tags=fmt.tags(),
    )


def round_trip(name: str, prob: np.ndarray, scales=SCALES, index=None, valid=None):
    fmt = get_encoding(name).format_for(scales)
    index = np.zeros(prob.shape, np.uint8) if index is None else index
    valid = np.ones(prob.shape, bool) if valid is None else valid
    stored = encode_tile(prob, index, valid, fmt=fmt)
    return stored, read_back(name, scales).decode(stored)


@pytest.mark.parametrize("name", QUANTISED)
@settings(max_examples=200, deadline=None)
@given(prob=probabilities)
def test_a_probability_comes_back_within_the_stated_bound(name, prob):
    _, decoded = round_trip(name, prob)
    error = np.abs(decoded[0].astype(np.float64) - prob)
    assert error.max() <= get_encoding(name).max_error
    assert ((decoded[0] >= 0) & (decoded[0] <= 1)).all()


def test_the_uint16_bound_meets_the_2e5_target_and_is_nearly_reached():
    enc = get_encoding("uint16")
    assert enc.max_error <= 2e-5
    # the worst case is half a step: a probability halfway between two codes
    prob = ((np.arange(1000, dtype=np.float64) + 0.4999) / enc.levels).astype(np.float32)[None]
    _, decoded = round_trip("uint16", prob)
    worst = np.abs(decoded[0].astype(np.float64) - prob).max()
    assert 0.49 / enc.levels < worst <= enc.max_error


@pytest.mark.parametrize("name", QUANTISED)
def test_zero_one_and_exact_levels_are_exact(name):
    levels = get_encoding(name).levels
    prob = (np.arange(levels + 1, dtype=np.float64) / levels).astype(np.float32)[None]
    stored, decoded = round_trip(name, prob)
    np.testing.assert_array_equal(stored[0][0], np.arange(levels + 1))
    assert decoded[0][0, 0] == 0.0 and decoded[0][0, -1] == 1.0
    # every code decodes to the float32 of code / levels: what GDAL's scale gives
    np.testing.assert_array_equal(decoded[0], prob)


@pytest.mark.parametrize("name", QUANTISED)
@settings(max_examples=100, deadline=None)
@given(prob=probabilities)
def test_codes_are_monotone_so_the_max_of_decoded_tiles_is_the_decoded_max(name, prob):
    flat = np.sort(prob.ravel())[None]
    stored, decoded = round_trip(name, flat)
    assert (np.diff(stored[0].astype(np.int64)) >= 0).all()
    assert (np.diff(decoded[0]) >= 0).all()
    # two "tiles": the pixel-wise max commutes with encoding
    other = prob[::-1].copy()
    _, d1 = round_trip(name, prob)
    _, d2 = round_trip(name, other)
    _, dmax = round_trip(name, np.maximum(prob, other))
    np.testing.assert_array_equal(np.maximum(d1[0], d2[0]), dmax[0])


@pytest.mark.parametrize("name", [*QUANTISED, "float32"])
def test_invalid_pixels_are_nodata_in_both_bands_and_decode_to_minus_one(name):
    prob = np.full((3, 4), 0.25, np.float32)
    valid = np.ones((3, 4), bool)
    valid[1, 1:3] = False
    index = np.ones((3, 4), np.uint8)
    stored, decoded = round_trip(name, prob, index=index, valid=valid)
    enc = get_encoding(name)
    assert stored.dtype == np.dtype(enc.dtype)
    assert (stored[:, ~valid] == enc.nodata).all()
    assert (stored[:, valid] != enc.nodata).all()
    assert (decoded[:, ~valid] == TILE_NODATA).all()
    assert (decoded[1][valid] == np.float32(0.5)).all()


@pytest.mark.parametrize("name", QUANTISED)
@settings(max_examples=100, deadline=None)
@given(
    scales=st.lists(
        st.floats(1e-3, 1.0, allow_subnormal=False), min_size=1, max_size=6, unique=True
    ),
    seed=st.integers(0, 2**16),
)
def test_the_winning_scale_reads_back_exactly_through_the_tags(name, scales, seed):
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(scales), size=(5, 7)).astype(np.uint8)
    prob = rng.random((5, 7)).astype(np.float32)
    _, decoded = round_trip(name, prob, scales=tuple(scales), index=index)
    # bit for bit what a float32 tile stores: the run's scales as float32
    np.testing.assert_array_equal(decoded[1], np.asarray(scales, np.float32)[index])


def test_float32_tiles_are_the_values_themselves():
    rng = np.random.default_rng(3)
    prob = rng.random((8, 9)).astype(np.float32)
    index = rng.integers(0, 2, size=(8, 9)).astype(np.uint8)
    valid = rng.random((8, 9)) > 0.2
    stored, decoded = round_trip("float32", prob, index=index, valid=valid)
    expected = np.stack([prob, np.asarray(SCALES, np.float32)[index]])
    expected[:, ~valid] = -1.0
    np.testing.assert_array_equal(stored, expected)
    np.testing.assert_array_equal(decoded, expected)
    assert get_encoding("float32").max_error == 0.0


@pytest.mark.parametrize("name", [*QUANTISED, "float32"])
@settings(max_examples=150, deadline=None)
@given(prob=probabilities, threshold=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_reaches_is_the_threshold_test_on_what_readers_decode(name, prob, threshold, seed):
    valid = np.random.default_rng(seed).random(prob.shape) > 0.3
    stored, decoded = round_trip(name, prob, valid=valid)
    fmt = get_encoding(name).format_for(SCALES)
    expected = bool((decoded[0][valid] >= np.float32(threshold)).any())
    assert fmt.reaches(stored[0], threshold) is expected


def test_reaches_on_a_code_just_below_the_threshold_that_rounds_up():
    # 0.5 - 3e-6 is nearer code 32767 (exactly 0.5) than 32766: stored, it reaches 0.5
    prob = np.array([[0.5 - 3e-6]], np.float32)
    stored, decoded = round_trip("uint16", prob)
    assert decoded[0][0, 0] == 0.5
    assert get_encoding("uint16").format_for(SCALES).reaches(stored[0], 0.5)
    assert not get_encoding("float32").format_for(SCALES).reaches(prob, 0.5)


def test_quantise_writes_every_chunk_of_a_large_tile():
    rng = np.random.default_rng(0)
    prob = rng.random((300, 301)).astype(np.float32)  # several chunks, a ragged last one
    out = np.empty(prob.shape, np.uint16)
    quantise(prob, 65534, out=out)
    exact = prob.astype(np.float64) * 65534
    nearest = np.floor(exact + 0.5)
    # the nearest code, except within 0.004 of a step of a rounding boundary (float32 product)
    off = out != nearest
    assert (np.abs(out[off] - nearest[off]) == 1).all()
    assert (np.abs(exact[off] - np.floor(exact[off]) - 0.5) < 0.004).all()
    assert off.sum() < 0.01 * off.size


def test_quantise_refuses_an_out_it_cannot_write_through():
    prob = np.zeros((4, 4), np.float32)
    with pytest.raises(InputError, match=r"need a contiguous out of that shape, \(4, 2\)"):
        quantise(prob, 254, out=np.empty((4, 4), np.uint8)[:, ::2])
    with pytest.raises(InputError, match="need an unsigned type above 65534, uint8 is given"):
        quantise(prob, 65534, out=np.empty((4, 4), np.uint8))


def test_encode_refuses_values_the_codes_cannot_hold():
    fmt = get_encoding("uint16").format_for(SCALES)
    valid = np.ones((2, 2), bool)
    index = np.zeros((2, 2), np.uint8)
    for bad in (1.5, -0.25, np.nan):
        prob = np.full((2, 2), 0.5, np.float32)
        prob[0, 1] = bad
        with pytest.raises(InputError, match=r"must lie in \[0, 1\] before encoding, found"):
            encode_tile(prob, index, valid, fmt=fmt)
    with pytest.raises(InputError, match="winning-scale index 2 given, the run has 2 scale"):
        encode_tile(np.zeros((2, 2), np.float32), np.full((2, 2), 2, np.uint8), valid, fmt=fmt)
    with pytest.raises(InputError, match="expected float32 probability"):
        encode_tile(np.zeros((2, 2), np.float64), index, valid, fmt=fmt)
    with pytest.raises(InputError, match=r"codes at most 255 scales .* the run has 256"):
        get_encoding("uint8").format_for([1.0 / (k + 1) for k in range(256)])
    assert get_encoding("uint8").format_for([1.0 / (k + 1) for k in range(255)])


def test_an_unknown_encoding_names_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown tile encoding 'int12'; known: float32"):
        get_encoding("int12")
    assert set(TILE_ENCODINGS) == {"uint16", "uint8", "float32"}


def header(name: str = "uint16", **changes):
    fmt = get_encoding(name).format_for(SCALES)
    values = {
        "dtypes": (fmt.encoding.dtype,) * 2,
        "nodata": fmt.encoding.nodata,
        "scales": fmt.band_scales,
        "offsets": fmt.band_offsets,
        "tags": fmt.tags(),
    }
    values.update(changes)
    return values


def test_the_format_is_read_from_the_header_not_assumed():
    fmt = tile_format(**header("uint16"))
    assert fmt.encoding.name == "uint16" and fmt.scale_codes == SCALES
    assert fmt.prob_scale == 1 / 26000
    legacy = tile_format(
        dtypes=("float32", "float32"), nodata=-1.0, scales=None, offsets=None, tags={}
    )
    assert legacy.encoding.name == "float32"  # files from before the encodings
    # a foreign scale is honoured as GDAL would apply it
    half = tile_format(**header("uint8", scales=(0.5 / 254, 1.0)))
    decoded = half.decode_probability(np.array([[254]], np.uint8))
    assert decoded[0, 0] == np.float32(0.5)
    # uint16 tiles of runs from before 26000 levels (1/65534) read by their own scale
    older = tile_format(**header("uint16", scales=(1 / 65534, 1.0)))
    decoded = older.decode_probability(np.array([[65534, 32767]], np.uint16))
    assert decoded.tolist() == [[1.0, np.float32(0.5)]]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dtypes": ("uint16", "uint8")}, "expected 2 bands of one of uint16, uint8, float32, found 2 band.s. of uint16/uint8"),
        ({"dtypes": ("int16", "int16")}, "found 2 band.s. of int16/int16"),
        ({"dtypes": ("uint16",) * 3}, "found 3 band"),
        ({"nodata": 0.0}, r"NoData 0.0 \(expected 65535 for uint16\)"),
        ({"nodata": None}, r"NoData None \(expected 65535"),
        ({"tags": {ENCODING_TAG: "uint8", SCALE_CODES_TAG: "1.0,0.5"}}, "tag tile_encoding='uint8' but the bands are uint16"),
        ({"tags": {ENCODING_TAG: "uint16"}}, r"no winning_scale_codes tag \(expected the winning scale of each code"),
        ({"tags": {SCALE_CODES_TAG: "1.0,big"}}, "winning_scale_codes='1.0,big' .expected positive numbers"),
        ({"tags": {SCALE_CODES_TAG: "1.0,-0.5"}}, "winning_scale_codes='1.0,-0.5'"),
        ({"scales": (0.0, 1.0)}, r"probability band scale/offset 0.0/0.0 \(expected a positive finite scale\)"),
        ({"scales": (1 / 65534, 2.0)}, r"winning_scale band scale/offset 2.0/0.0 \(expected 1/0\)"),
    ],
)  # fmt: skip
def test_a_header_that_is_no_tile_format_says_what_was_expected(changes, message):
    with pytest.raises(InputError, match=message):
        tile_format(**header("uint16", **changes))


def test_a_float32_file_with_a_band_scale_is_refused():
    with pytest.raises(InputError, match=r"scale/offset 2.0/0.0 \(expected 1/0 for float32\)"):
        tile_format(**header("float32", scales=(2.0, 1.0)))


def test_a_code_without_a_scale_decodes_to_nan_which_the_merge_refuses():
    fmt = read_back("uint16")
    raw = np.array([[[100, 100]], [[1, 7]]], np.uint16)  # code 7: the run had 2 scales
    decoded = fmt.decode(raw)
    assert np.isnan(decoded[1][0, 1])
    with pytest.raises(InputError, match="1 winning scales not positive and finite"):
        check_tile_values(decoded[0], decoded[1], tile_id="t")


def test_decoded_nodata_is_the_merge_nodata():
    assert TILE_NODATA == PROB_NODATA
