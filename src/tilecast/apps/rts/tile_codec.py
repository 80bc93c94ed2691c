"""How a thaw-slump tile file stores its two bands: the encodings and their arithmetic.

Pure numpy, no I/O: the sink (:mod:`tilecast.apps.rts.sink`) encodes with it, the readers of
tile files (the merge, the vectoriser) decode with it, and neither knows more about the format
than what is here.

A tile is a pair of bands, ``probability`` and ``winning_scale``, with one NoData value (the
pixels the input had no data for). Three encodings, by name in :data:`TILE_ENCODINGS`:

``uint16`` (the default)
    probability ``p`` in [0, 1] is stored as the code ``round(p * 26000)`` (0..26000), so a
    reader gets ``code * (1/26000)`` back, within :attr:`TileEncoding.max_error` (1.95e-5) of
    ``p``; 65535 is NoData. The factor is the band's GDAL scale (offset 0), so GDAL users read
    true probabilities (``rasterio``'s ``src.scales``, ``gdal_translate -unscale``). 26000 is
    the fewest whole thousands of levels whose bound stays under 2e-5, the accuracy the
    pan-arctic run asks of a tile: every level more stores more of the model's pixel-to-pixel
    noise (the demo's tiles take 154 KB at 26000 levels, 192 KB at 65534, same compressor).
    Codes above 26000 are never written; a file holding one decodes above 1, which the merge
    refuses.
``uint8``
    the same with 254 levels (resolution 1/254, error <= 0.002), NoData 255.
``float32``
    the probability as computed, NoData -1 (the files before the encodings existed).

In the integer encodings the winning-scale band holds the index of the scale in the run's
scales (code ``i`` is the ``i``-th value of the ``winning_scale_codes`` tag, e.g. ``1.0,0.5``),
with the band's NoData; a reader gets the scale's float32 value back exactly. In ``float32``
the band holds the value itself. Every tile file written since carries a ``tile_encoding`` tag;
a float32 file without one (older runs) reads the same way.

Quantisation is monotone (a higher probability never gets a lower code), so the maximum of
decoded tiles is the decoded maximum: a mosaic merged from quantised tiles equals the float32
run's mosaic quantised the same way (``tests/rts/test_tile_codec.py``).

Decoding goes through a table of every code's value (computed in float64, as GDAL applies a
band scale, then rounded to float32), so decoding is one lookup per pixel and NoData comes out
as :data:`TILE_NODATA` (-1) whatever the encoding: the merge sees float32 tiles in every case.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tilecast.errors import InputError, UnknownNameError

__all__ = [
    "ENCODING_TAG",
    "SCALE_CODES_TAG",
    "TILE_BANDS",
    "TILE_ENCODINGS",
    "TILE_NODATA",
    "TileEncoding",
    "TileEncodingName",
    "TileFormat",
    "encode_tile",
    "get_encoding",
    "quantise",
    "tile_format",
]

TileEncodingName = Literal["uint16", "uint8", "float32"]

#: NoData of decoded tiles (both bands) and of float32 tile files.
TILE_NODATA = -1.0
#: Band descriptions of a tile file, in band order.
TILE_BANDS = ("probability", "winning_scale")
#: Dataset tag naming the encoding.
ENCODING_TAG = "tile_encoding"
#: Dataset tag of the integer encodings: the winning scale of each code, comma separated.
SCALE_CODES_TAG = "winning_scale_codes"


@dataclass(frozen=True)
class TileEncoding:
    """One way to store a tile: the pixel type of both bands, their NoData, and ``levels``.

    With ``levels > 0`` a probability ``p`` is stored as the code ``round(p * levels)`` and
    NoData is the type's top code; with ``levels == 0`` (float32) values are stored as they are.
    """

    name: str
    dtype: str
    nodata: float
    levels: int

    @property
    def quantised(self) -> bool:
        return self.levels > 0

    @property
    def resolution(self) -> float:
        """The step between two stored probabilities (0 for float32)."""
        return 1.0 / self.levels if self.quantised else 0.0

    @property
    def max_error(self) -> float:
        """Bound on ``|decoded - p|`` for ``p`` in [0, 1].

        Half a step, plus the float32 rounding of ``p * levels`` before the code is taken (at
        most 0.002 of a step for any levels under 2**16) and of the decoded value (2**-25).
        """
        if not self.quantised:
            return 0.0
        return 0.505 / self.levels + 2.0**-25

    def format_for(self, scales: Sequence[float]) -> TileFormat:
        """The format a writer records for a run with these ``scales`` (in the run's order)."""
        values = tuple(float(s) for s in scales)
        if not values:
            raise InputError("a tile format needs the run's scales, none are given")
        if self.quantised and len(values) > self.nodata:
            raise InputError(
                f"tile encoding {self.name} codes at most {int(self.nodata)} scales "
                f"(code {int(self.nodata)} is NoData), the run has {len(values)}"
            )
        if not self.quantised:
            return TileFormat(self, scale_codes=values)
        return TileFormat(self, prob_scale=1.0 / self.levels, scale_codes=values)


#: The encodings by name (``output.tile_encoding`` in the job's config).
TILE_ENCODINGS: dict[str, TileEncoding] = {
    "uint16": TileEncoding("uint16", "uint16", 65535, 26000),
    "uint8": TileEncoding("uint8", "uint8", 255, 254),
    "float32": TileEncoding("float32", "float32", TILE_NODATA, 0),
}
_BY_DTYPE = {e.dtype: e for e in TILE_ENCODINGS.values()}


def get_encoding(name: str) -> TileEncoding:
    try:
        return TILE_ENCODINGS[name]
    except KeyError:
        raise UnknownNameError("tile encoding", name, list(TILE_ENCODINGS)) from None


@dataclass(frozen=True)
class TileFormat:
    """How one tile file's bands map to probabilities and scales.

    ``prob_scale`` and ``prob_offset`` are the probability band's GDAL scale and offset
    (``value = code * scale + offset``); ``scale_codes`` the run's scales, in its order: the
    winning scale of each code of the integer encodings. A float32 band holds the values
    themselves, so a float32 file's format, read back, has none.
    """

    encoding: TileEncoding
    prob_scale: float = 1.0
    prob_offset: float = 0.0
    scale_codes: tuple[float, ...] = ()

    @property
    def band_scales(self) -> tuple[float, float]:
        return (self.prob_scale, 1.0)

    @property
    def band_offsets(self) -> tuple[float, float]:
        return (self.prob_offset, 0.0)

    def tags(self) -> dict[str, str]:
        """The dataset tags that name this format in the file."""
        tags = {ENCODING_TAG: self.encoding.name}
        if self.encoding.quantised:
            tags[SCALE_CODES_TAG] = ",".join(repr(v) for v in self.scale_codes)
        return tags

    # -- decoding ------------------------------------------------------------------------

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """``(2, h, w)`` stored bands -> float32 ``(probability, winning scale)``, NoData -1.

        A winning-scale code outside ``scale_codes`` decodes to NaN (the merge refuses it).
        """
        if raw.ndim != 3 or raw.shape[0] != 2:
            raise InputError(f"expected a (2, rows, cols) tile array, got shape {raw.shape}")
        out = np.empty(raw.shape, np.float32)
        self.decode_probability(raw[0], out=out[0])
        self.decode_winning_scale(raw[1], out=out[1])
        return out

    def decode_probability(self, band: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """The probability band as float32 values, NoData -1."""
        self._check_dtype(band)
        if not self.encoding.quantised:
            return _copy_into(band, out)
        table = _probability_table(
            self.encoding.dtype, self.prob_scale, self.prob_offset, int(self.encoding.nodata)
        )
        return _look_up(table, band, out)

    def decode_winning_scale(
        self, band: np.ndarray, *, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The winning-scale band as float32 scale values, NoData -1."""
        self._check_dtype(band)
        if not self.encoding.quantised:
            return _copy_into(band, out)
        table = _scale_table(self.encoding.dtype, self.scale_codes, int(self.encoding.nodata))
        return _look_up(table, band, out)

    def reaches(self, band: np.ndarray, threshold: float) -> bool:
        """Whether any stored probability of ``band`` decodes to ``>= threshold`` (compared in
        float32, as the merge's binary mask is); NoData never does (``threshold >= 0``)."""
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"threshold must lie in [0, 1], {threshold!r} is given")
        t = np.float32(threshold)
        self._check_dtype(band)
        if not self.encoding.quantised:
            return bool((band >= t).any())
        nodata = int(self.encoding.nodata)
        table = _probability_table(self.encoding.dtype, self.prob_scale, self.prob_offset, nodata)
        # values increase with the code (the scale is positive): the codes that reach the
        # threshold are those from the first one that does
        first = int(np.searchsorted(table[:nodata], t, side="left"))
        if first == nodata:
            return False
        hits = band >= band.dtype.type(first)
        hits &= band != nodata
        return bool(hits.any())

    def _check_dtype(self, band: np.ndarray) -> None:
        if band.dtype != np.dtype(self.encoding.dtype):
            raise InputError(
                f"a {self.encoding.name} tile band must be {self.encoding.dtype}, "
                f"{band.dtype} is given"
            )


def _look_up(table: np.ndarray, band: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``table[band]`` into ``out`` (float32, band's shape), in chunks through one small index
    buffer: numpy would otherwise turn the whole band into a fresh 8-byte index array."""
    result = np.empty(band.shape, np.float32) if out is None else out
    if result.shape != band.shape or not result.flags.c_contiguous:
        raise InputError(f"decoding a {band.shape} band needs a contiguous out of that shape")
    flat_in, flat_out = band.reshape(-1), result.reshape(-1)
    index = np.empty(min(_CHUNK, flat_in.size), np.intp)
    for start in range(0, flat_in.size, _CHUNK):
        part = flat_in[start : start + _CHUNK]
        chunk = index[: part.size]
        chunk[...] = part
        # every code of the band's type is in the table: "clip" never clips, skips the check
        np.take(table, chunk, out=flat_out[start : start + _CHUNK], mode="clip")
    return result


def _copy_into(band: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return band.astype(np.float32, copy=True)
    np.copyto(out, band)
    return out


@functools.lru_cache(maxsize=16)
def _probability_table(dtype: str, scale: float, offset: float, nodata: int) -> np.ndarray:
    """Every code's probability (float64 arithmetic, as GDAL applies the band scale, then
    float32), NoData -> -1. Read-only: it is shared."""
    codes = np.arange(np.iinfo(np.dtype(dtype)).max + 1, dtype=np.float64)
    table = (codes * scale + offset).astype(np.float32)
    table[nodata] = TILE_NODATA
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=16)
def _scale_table(dtype: str, values: tuple[float, ...], nodata: int) -> np.ndarray:
    """Every code's winning scale (float32), NaN for codes no scale has, NoData -> -1."""
    table = np.full(np.iinfo(np.dtype(dtype)).max + 1, np.nan, np.float32)
    table[: len(values)] = np.asarray(values, np.float32)
    table[nodata] = TILE_NODATA
    table.flags.writeable = False
    return table


# -- encoding --------------------------------------------------------------------------------


def quantise(prob: np.ndarray, levels: int, *, out: np.ndarray) -> np.ndarray:
    """``round(prob * levels)`` into the integer array ``out`` (``prob`` float32 in [0, 1]).

    Computed in float32 (``prob * levels + 0.5``, truncated): monotone in ``prob``, and the
    code is the nearest one except within 0.002 of a step of a rounding boundary.
    """
    if out.dtype.kind != "u" or np.iinfo(out.dtype).max <= levels:
        raise InputError(
            f"codes of {levels} levels need an unsigned type above {levels}, {out.dtype} is given"
        )
    if out.shape != prob.shape or not out.flags.c_contiguous:
        raise InputError(
            f"codes of {prob.shape} probabilities need a contiguous out of that shape, "
            f"{out.shape} ({'' if out.flags.c_contiguous else 'not '}contiguous) is given"
        )
    # in chunks through one small buffer: a whole-tile float32 temporary is a fresh 1 MiB that
    # the allocator maps and unmaps per tile (page faults cost more than the arithmetic)
    flat_in, flat_out = prob.reshape(-1), out.reshape(-1)
    buffer = np.empty(min(_CHUNK, flat_in.size), np.float32)
    for start in range(0, flat_in.size, _CHUNK):
        part = flat_in[start : start + _CHUNK]
        scaled = buffer[: part.size]
        np.multiply(part, np.float32(levels), out=scaled)
        scaled += np.float32(0.5)
        np.copyto(flat_out[start : start + _CHUNK], scaled, casting="unsafe")
    return out


_CHUNK = 1 << 14  # float32 elements per quantising step (64 KiB)


def encode_tile(
    prob: np.ndarray,
    winning_scale: np.ndarray,
    valid: np.ndarray,
    *,
    fmt: TileFormat,
) -> np.ndarray:
    """The ``(2, H, W)`` array a tile file of format ``fmt`` holds.

    ``prob`` is float32 in [0, 1] (after QC, every pixel), ``winning_scale`` the index of each
    pixel's scale in the run's scales, ``valid`` where the input had data; invalid pixels are
    NoData in both bands.
    """
    enc = fmt.encoding
    shape = prob.shape
    if prob.ndim != 2 or winning_scale.shape != shape or valid.shape != shape:
        raise InputError(
            f"probability {prob.shape}, winning scale {winning_scale.shape} and valid "
            f"{valid.shape} must be the same (rows, cols)"
        )
    if prob.dtype != np.float32 or valid.dtype != np.bool_ or winning_scale.dtype.kind != "u":
        raise InputError(
            "expected float32 probability, unsigned winning-scale indices and a bool mask, "
            f"got {prob.dtype}, {winning_scale.dtype} and {valid.dtype}"
        )
    lo, hi = (float(prob.min()), float(prob.max())) if prob.size else (0.0, 0.0)
    if not (lo >= 0.0 and hi <= 1.0):  # NaN fails too
        raise InputError(f"probabilities must lie in [0, 1] before encoding, found {lo}..{hi}")
    n_scales = len(fmt.scale_codes)
    top = int(winning_scale.max()) if winning_scale.size else 0
    if top >= n_scales:
        raise InputError(f"winning-scale index {top} given, the run has {n_scales} scale(s)")
    out = np.empty((2, *shape), enc.dtype)
    if enc.quantised:
        quantise(prob, enc.levels, out=out[0])
        np.copyto(out[1], winning_scale, casting="unsafe")
    else:
        out[0] = prob
        np.take(np.asarray(fmt.scale_codes, np.float32), winning_scale, out=out[1])
    if not valid.all():
        invalid = ~valid
        np.copyto(out[0], enc.nodata, where=invalid, casting="unsafe")
        np.copyto(out[1], enc.nodata, where=invalid, casting="unsafe")
    return out


# -- reading a file's format -------------------------------------------------------------------


def tile_format(
    *,
    dtypes: Sequence[str],
    nodata: float | None,
    scales: Sequence[float] | None,
    offsets: Sequence[float] | None,
    tags: Mapping[str, str],
) -> TileFormat:
    """The format of a tile file, from its header (band types, NoData, the bands' GDAL scale
    and offset, the dataset tags); :class:`InputError` saying what was expected and what the
    file has."""
    kinds = sorted(set(dtypes))
    if len(dtypes) != 2 or len(kinds) != 1 or kinds[0] not in _BY_DTYPE:
        raise InputError(
            f"expected 2 bands of one of {', '.join(_BY_DTYPE)}, found "
            f"{len(dtypes)} band(s) of {'/'.join(dtypes) or 'nothing'}"
        )
    enc = _BY_DTYPE[kinds[0]]
    problems = []
    named = tags.get(ENCODING_TAG)
    if named is not None and named != enc.name:
        problems.append(f"tag {ENCODING_TAG}={named!r} but the bands are {enc.dtype}")
    if nodata is None or nodata != enc.nodata:
        problems.append(f"NoData {nodata} (expected {enc.nodata:g} for {enc.dtype})")
    band_scales = tuple(scales or (1.0, 1.0))
    band_offsets = tuple(offsets or (0.0, 0.0))
    if band_scales[1] != 1.0 or band_offsets[1] != 0.0:
        problems.append(
            f"winning_scale band scale/offset {band_scales[1]}/{band_offsets[1]} (expected 1/0)"
        )
    if not enc.quantised:
        if band_scales[0] != 1.0 or band_offsets[0] != 0.0:
            problems.append(
                f"probability band scale/offset {band_scales[0]}/{band_offsets[0]} "
                "(expected 1/0 for float32)"
            )
        if problems:
            raise InputError("tile file: " + "; ".join(problems))
        return TileFormat(enc)
    prob_scale, prob_offset = float(band_scales[0]), float(band_offsets[0])
    if not (math.isfinite(prob_scale) and prob_scale > 0 and math.isfinite(prob_offset)):
        problems.append(
            f"probability band scale/offset {prob_scale}/{prob_offset} "
            "(expected a positive finite scale)"
        )
    codes = _parse_codes(tags.get(SCALE_CODES_TAG), enc, problems)
    if problems:
        raise InputError("tile file: " + "; ".join(problems))
    return TileFormat(enc, prob_scale=prob_scale, prob_offset=prob_offset, scale_codes=codes)


def _parse_codes(text: str | None, enc: TileEncoding, problems: list[str]) -> tuple[float, ...]:
    if text is None:
        problems.append(
            f"no {SCALE_CODES_TAG} tag (expected the winning scale of each code, e.g. '1.0,0.5')"
        )
        return ()
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        problems.append(f"{SCALE_CODES_TAG}={text!r} (expected positive numbers, comma separated)")
    elif len(values) > enc.nodata:
        problems.append(
            f"{SCALE_CODES_TAG} lists {len(values)} scales, {enc.name} codes at most {int(enc.nodata)}"
        )
    return values
