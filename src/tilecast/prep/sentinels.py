"""Sentinel guard: find the pixels and record fields that hold no measurement.

Rasters and well-log records mark missing data with magic numbers (-999, -999.25, -9999),
NaN, infinities, a raster NoData value, or (when they come from CSV or JSON) ``None`` and
strings such as ``"NA"``. None of those may reach arithmetic: :func:`guard_pixels` turns an
image into a validity mask plus a count per reason, :func:`is_sentinel` and
:func:`parse_number` do the same for single values.

A sentinel is compared in the precision of the data that holds it: a float32 image is
compared with ``float32(-999.25)``, which is what a writer storing -999.25 in float32 put
there; an integer image is only compared with sentinels it can represent exactly (a uint8
image can never hold -999, so that comparison is skipped, not an error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from tilecast.errors import InputError, SentinelError
from tilecast.prep.arrays import Array, LazyCounts, dtype_kind, numpy_dtype, ones_mask

__all__ = [
    "DEFAULT_SENTINEL_STRINGS",
    "DEFAULT_SENTINEL_VALUES",
    "GuardResult",
    "SentinelPolicy",
    "guard_pixels",
    "is_sentinel",
    "nodata_hits",
    "parse_number",
]

DEFAULT_SENTINEL_VALUES: tuple[float, ...] = (-999.0, -999.25, -9999.0)
DEFAULT_SENTINEL_STRINGS: tuple[str, ...] = ("NA", "N/A", "", "None", "null", "NaN", "nan")

# Reason keys used in GuardResult.counts besides the str(float) of each sentinel value.
REASON_NONE = "None"
REASON_NAN = "nan"
REASON_POS_INF = "+inf"
REASON_NEG_INF = "-inf"
REASON_NODATA = "nodata"
REASON_NOT_A_NUMBER = "not a number"


@dataclass(frozen=True)
class SentinelPolicy:
    """What counts as "no measurement".

    ``values`` are compared exactly (in the precision of the data, see the module notes);
    ``nan`` and ``inf`` switch the non-finite checks; ``strings`` (stored stripped) are
    compared with the stripped text of string elements, case-sensitively; text that parses
    as a number is also compared numerically.
    """

    values: tuple[float, ...] = DEFAULT_SENTINEL_VALUES
    nan: bool = True
    inf: bool = True
    strings: tuple[str, ...] = DEFAULT_SENTINEL_STRINGS

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.values)
        for v in values:
            if not math.isfinite(v):
                raise InputError(
                    f"sentinel values must be finite numbers (use nan=/inf= for non-finite "
                    f"values), {v!r} is given"
                )
        object.__setattr__(self, "values", values)
        strings = tuple(dict.fromkeys(str(s).strip() for s in self.strings))
        object.__setattr__(self, "strings", strings)

    def with_nodata(self, nodata: float | None) -> SentinelPolicy:
        """A policy that also treats the raster's NoData value as a sentinel.

        ``None`` returns this policy; a NaN NoData returns a policy with ``nan=True``; a
        number already among ``values`` returns this policy unchanged.
        """
        if nodata is None:
            return self
        nodata = float(nodata)
        if math.isnan(nodata):
            return self if self.nan else _replace(self, nan=True)
        if math.isinf(nodata):
            return self if self.inf else _replace(self, inf=True)
        if nodata in self.values:
            return self
        return _replace(self, values=(*self.values, nodata))


def _replace(policy: SentinelPolicy, **changes: object) -> SentinelPolicy:
    return replace(policy, **changes)


@dataclass(frozen=True, eq=False)
class GuardResult:
    """The outcome of :func:`guard_pixels`.

    ``valid`` is a bool (H, W) mask: a pixel is valid only if every channel is valid.
    ``counts`` maps each reason that occurred to the number of pixels it hit; a pixel is
    counted under its first matching reason only, so the counts sum to ``n_invalid``.
    Reason keys: ``"nan"``, ``"+inf"``, ``"-inf"``, ``"nodata"``, ``str(float(v))`` for each
    sentinel value (``"-999.0"``, ``"-999.25"``, ``"-9999.0"``), and for object arrays
    ``"None"``, ``repr`` of a sentinel string (``"'NA'"``, ``"''"``) and ``"not a number"``.
    """

    valid: Array  # numpy or torch, as the image was
    counts: Mapping[str, int] = field(default_factory=dict)
    all_valid: bool = False  # known without looking: no reason could hit (e.g. uint8, no NoData)

    def __post_init__(self) -> None:
        if not isinstance(self.counts, LazyCounts):  # read-only either way
            counts = {str(k): int(v) for k, v in dict(self.counts).items() if int(v) > 0}
            object.__setattr__(self, "counts", MappingProxyType(counts))

    @property
    def size(self) -> int:
        return int(np.prod(tuple(self.valid.shape)))

    @property
    def n_invalid(self) -> int:
        return self.size - self.n_valid

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def fraction_valid(self) -> float:
        """Share of valid pixels; 0.0 for an empty image."""
        return self.n_valid / self.size if self.size else 0.0


def _show(value: object) -> str:
    """A readable repr for error messages (numpy scalars shown as plain Python numbers)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _as_float(value: object) -> float | None:
    """The value as a float, or None if it is not a number (bools are not numbers)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float | np.integer | np.floating):
        try:
            return float(value)
        except OverflowError:  # an int too large for a float is a number, just not a sentinel
            return None
    return None


def _scalar_reason(value: object, policy: SentinelPolicy, nodata: float | None) -> str | None:
    """Why ``value`` is not a measurement, or None when it is one."""
    if value is None:
        return REASON_NONE
    if isinstance(value, str | np.str_):
        text = str(value).strip()
        if text in policy.strings:
            return repr(text)
        number = _as_float(text)
        if number is None:
            return REASON_NOT_A_NUMBER
        return _number_reason(number, policy, nodata, dtype=None)
    number = _as_float(value)
    if number is None:
        return REASON_NOT_A_NUMBER
    dtype = value.dtype if isinstance(value, np.floating) else None
    return _number_reason(number, policy, nodata, dtype=dtype)


def _number_reason(
    number: float, policy: SentinelPolicy, nodata: float | None, *, dtype: np.dtype | None
) -> str | None:
    if math.isnan(number):
        return REASON_NAN if policy.nan or _is_nan(nodata) else None
    if math.isinf(number):
        if not policy.inf and not (nodata is not None and number == nodata):
            return None
        return REASON_POS_INF if number > 0 else REASON_NEG_INF
    if nodata is not None and _equal_in(number, nodata, dtype):
        return REASON_NODATA
    for v in policy.values:
        if _equal_in(number, v, dtype):
            return str(v)
    return None


def _equal_in(number: float, sentinel: float, dtype: np.dtype | None) -> bool:
    """``number == sentinel`` with the sentinel first stored in ``dtype`` (None: float64)."""
    if dtype is None:
        return number == sentinel
    with np.errstate(over="ignore"):
        stored = np.asarray(sentinel, dtype=dtype)
    return bool(np.isfinite(stored)) and number == float(stored)


def _is_nan(x: float | None) -> bool:
    return x is not None and math.isnan(x)


def is_sentinel(value: object, *, policy: SentinelPolicy = SentinelPolicy()) -> bool:
    """True when a scalar from a record holds no measurement.

    ``None``, a sentinel string (after stripping), NaN and infinities (as the policy says),
    and numbers equal to a sentinel value are sentinels; a string that parses as a number is
    compared numerically (``" -999.25 "`` is a sentinel). A string that is not a number
    (``"abc"``) is not a sentinel (it is garbage, which :func:`parse_number` reports).
    """
    reason = _scalar_reason(value, policy, None)
    return reason is not None and reason != REASON_NOT_A_NUMBER


def parse_number(value: object, *, field: str, policy: SentinelPolicy = SentinelPolicy()) -> float:
    """The finite float held by a record field, or :class:`SentinelError` naming the field."""
    reason = _scalar_reason(value, policy, None)
    if reason == REASON_NOT_A_NUMBER:
        raise SentinelError(f"{field} is not a number: found {_show(value)}, expected a number")
    if reason is not None:
        raise SentinelError(f"{field} is missing: found {_show(value)} (a sentinel)")
    number = _as_float(value)
    assert number is not None  # _scalar_reason returned None, so it parsed
    if not math.isfinite(number):  # non-finite values the policy does not call sentinels
        raise SentinelError(f"{field} is not finite: found {_show(value)}, expected a number")
    return number


def guard_pixels(
    image: Array,
    *,
    policy: SentinelPolicy = SentinelPolicy(),
    nodata: float | None = None,
) -> GuardResult:
    """Validity mask and per-reason counts for a (C, H, W) or (H, W) image.

    ``image`` is a numpy array or a torch tensor on any device; ``valid`` comes back as the
    same kind (a tensor stays on its device, and so do the counts until they are read, so a
    pipeline on a GPU does not wait for them). Numeric images are compared without casting
    the image: each comparison is done in the image's own dtype, one (H, W) boolean plane at
    a time, with operators only, so numpy and torch run the same code. Object arrays (and
    string arrays, numpy only) are checked element by element: ``None``, sentinel strings,
    strings that parse to a sentinel number, NaN, infinities, and strings that are not
    numbers at all are invalid. The reasons are tried in this order and a pixel is counted
    under the first that hits: None, sentinel strings, nan, +inf, -inf, nodata, the policy
    values, not a number. Every reason hits a pixel when any of its channels holds it,
    except ``nodata``, which follows GDAL's rule for per-band NoData: only a pixel whose
    *every* channel is NoData is invalid (see :func:`nodata_hits`); a NoData value that is
    also a policy sentinel (-999) still invalidates a pixel in any channel, counted under the
    sentinel. A NaN ``nodata`` is counted as ``"nan"``.
    """
    if image.ndim not in (2, 3):
        raise InputError(
            f"guard_pixels expects a (C, H, W) or (H, W) array, an array of shape "
            f"{tuple(image.shape)} is given"
        )
    if nodata is not None:
        nodata = float(nodata)
    if not isinstance(image, torch.Tensor):
        image = np.asarray(image)
    planes = image if image.ndim == 3 else image[None]
    if planes.shape[0] == 0:
        raise InputError(
            f"guard_pixels expects at least one channel, shape {tuple(image.shape)} is given"
        )
    kind = dtype_kind(planes)
    if kind in "biuf":
        reasons = _numeric_reasons(planes, policy, nodata)
    elif kind in "OUS":
        reasons = _object_reasons(planes, policy, nodata)
    else:
        raise InputError(
            f"guard_pixels expects a numeric or object array, dtype {planes.dtype} is given"
        )

    invalid = None
    names: list[str] = []
    counts: list[Any] = []
    for reason, hit in reasons:
        new = hit if invalid is None else hit & ~invalid
        names.append(reason)
        counts.append(new.sum())
        invalid = new if invalid is None else invalid | new
    valid = ones_mask(planes) if invalid is None else ~invalid
    return GuardResult(
        valid=valid, counts=LazyCounts(tuple(names), counts), all_valid=invalid is None
    )


def _numeric_reasons(
    planes: Array, policy: SentinelPolicy, nodata: float | None
) -> Iterator[tuple[str, Array]]:
    """Yield (reason, per-pixel hit mask) for a numeric (C, H, W) array or tensor, lazily."""
    if dtype_kind(planes) == "f":
        if policy.nan:
            yield REASON_NAN, _any_channel(planes, _is_nan_value)
        elif _is_nan(nodata):
            yield REASON_NAN, _all_channels(planes, _is_nan_value)
        inf_nodata = nodata is not None and math.isinf(nodata)
        if policy.inf or (inf_nodata and nodata > 0):
            yield REASON_POS_INF, _any_channel(planes, lambda p: p == math.inf)
        if policy.inf or (inf_nodata and nodata < 0):
            yield REASON_NEG_INF, _any_channel(planes, lambda p: p == -math.inf)
    if nodata is not None and math.isfinite(nodata):
        yield REASON_NODATA, nodata_hits(planes, nodata)
    for v in policy.values:
        stored = _stored(v, numpy_dtype(planes))
        if stored is not None:
            yield str(v), _any_channel(planes, lambda p, s=stored: p == s)


def _is_nan_value(plane: Array) -> Array:
    return plane != plane  # NaN is the one value unequal to itself (numpy and torch alike)


def nodata_hits(planes: Array, nodata: float) -> Array:
    """(H, W) pixels whose *every* channel holds ``nodata`` (NaN: every channel NaN).

    GDAL's rule for per-band NoData (a dataset mask is 0 only where all bands are NoData): a
    dark pixel with one band at 0 in a raster whose NoData is 0 is data, not a hole. Values a
    ``dtype`` cannot hold never match. Works on numpy arrays and torch tensors alike.
    """
    planes = planes if planes.ndim == 3 else planes[None]
    if math.isnan(nodata):
        if dtype_kind(planes) != "f":
            return ~ones_mask(planes)
        return _all_channels(planes, _is_nan_value)
    stored = _stored(nodata, numpy_dtype(planes))
    if stored is None:
        return ~ones_mask(planes)
    return _all_channels(planes, lambda p, s=stored: p == s)


def _all_channels(planes: Array, test: Callable[[Array], Array]) -> Array:
    """AND of ``test`` over channels, one (H, W) plane at a time."""
    hit = test(planes[0])
    for plane in planes[1:]:
        hit &= test(plane)
    return hit


def _any_channel(planes: Array, test: Callable[[Array], Array]) -> Array:
    """OR of ``test`` over channels, one (H, W) plane at a time (no (C, H, W) temporary)."""
    hit = test(planes[0])
    for plane in planes[1:]:
        hit |= test(plane)
    return hit


def _stored(value: float, dtype: np.dtype) -> float | int | bool | None:
    """``value`` as an array of ``dtype`` would hold it (a Python number, so numpy and torch
    compare it in the array's own dtype), or None if it cannot hold it."""
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            stored = dtype.type(value)
        return float(stored) if np.isfinite(stored) else None
    if dtype.kind == "b":
        return bool(value) if value in (0.0, 1.0) else None
    info = np.iinfo(dtype)
    if value != int(value) or not info.min <= value <= info.max:
        return None
    return int(value)


def _object_reasons(
    planes: np.ndarray, policy: SentinelPolicy, nodata: float | None
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (reason, per-pixel hit mask) for an object or string (C, H, W) array."""
    flat = planes.ravel()
    reasons = [_scalar_reason(v, policy, nodata) for v in flat]
    order = [REASON_NONE, *(repr(s) for s in policy.strings)]
    order += [REASON_NAN, REASON_POS_INF, REASON_NEG_INF, REASON_NODATA]
    order += [str(v) for v in policy.values] + [REASON_NOT_A_NUMBER]
    order = list(dict.fromkeys(order))
    index = {r: i for i, r in enumerate(order)}
    codes = np.fromiter(
        (index[r] if r is not None else -1 for r in reasons), dtype=np.int16, count=flat.size
    ).reshape(planes.shape)
    nodata_code = index[REASON_NODATA]
    for i, reason in enumerate(order):
        if i == nodata_code:  # NoData: every channel (GDAL's rule)
            yield reason, (codes == i).all(axis=0)
        elif nodata is not None and reason == str(nodata):  # a sentinel that is also NoData
            yield reason, ((codes == i) | (codes == nodata_code)).any(axis=0)
        else:
            yield reason, (codes == i).any(axis=0)
