"""Synthetic raster well-log scans with their registration and ground truth.

Pure numpy (PIL only draws the text labels); no file I/O. A scan is deterministic for its seed:
each ingredient (layout, log data, paper, curves, noise, missing pixels) draws from its own
child of ``numpy.random.SeedSequence(seed)``.

What a scan holds (the conventions of :mod:`tilecast.apps.welllog.axes`):

- a grayscale uint8 image, widths 3200-12800 px and heights 480-640 px, depth along the width
  (column 0 at ``top_depth``); some scans run upwards (``top_depth > bottom_depth``);
- grid paper: horizontal track lines (10 major divisions of 5 minor ones across the height) and
  vertical depth lines (a minor line every few depth units, every fifth one major, labelled);
  curve names and scales printed along the track; uneven paper tone, scanner noise, dust;
- a slight skew: the whole sheet is sheared by up to 1.5 px per 10 000 columns, rows drifting
  with the column (the digitiser does not correct it; it is part of the error budget);
- one or two curves from synthetic log data sampled every half foot (or 0.1524 m):
  a gamma-ray-like curve (0-150 gAPI, linear) and a resistivity-like curve (0.2-2000 ohm.m,
  log), with gaps where the source data holds -999. Curve slot 1 (model class 1) is drawn as a
  thin dark line, slot 2 (class 2) as a wider grey line, so the model can tell them apart;
- **missing pixels** on some scans (a torn edge or a scanner dropout stripe): value **0**.
  Nothing else on a scan is ever 0 (ink is clipped to 1), and the well-log bundle's contract
  lists 0 among its pixel sentinels, so the serving path masks and counts these pixels.

Ground truth: the value of every curve at every column's depth (NaN in source gaps), which
columns the missing pixels hide, the per-pixel class mask (0 background, k + 1 for curve slot
k + 1, 255 missing) and the source log arrays with their -999 gaps.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tilecast.apps.welllog.axes import (
    GRID_DIVISIONS,
    MINOR_PER_MAJOR,
    column_depths,
    fraction_to_row,
    value_to_fraction,
)
from tilecast.apps.welllog.records import CurveSpec, ScanRecord
from tilecast.errors import InputError

MISSING_PIXEL = 0  # the pixel value of missing (torn, dropped-out) scan pixels
SOURCE_NULL = -999.0  # the source log data's null value
MASK_MISSING = 255  # class-mask value of missing pixels (ignored in training)

WIDTH_RANGE = (3200, 12800)
HEIGHT_RANGE = (480, 640)

GAMMA = CurveSpec(name="GR", unit="gAPI", left=0.0, right=150.0, scale="linear")
RESISTIVITY = CurveSpec(name="RES", unit="ohm.m", left=0.2, right=2000.0, scale="log")

# Depth per column and the source sampling step, per depth unit.
COLUMN_STEPS = {"ft": (0.05, 0.1, 0.125, 0.2), "m": (0.02, 0.025, 0.05)}
SOURCE_STEP = {"ft": 0.5, "m": 0.1524}
DEPTH_LINE_STEPS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)  # candidate minor depth-line spacings

# Curve slot styles: (ink grey level, half width in px). Slot 1 is thin and dark.
SLOT_STYLES = ((20.0, 1.0), (115.0, 2.5))


@dataclass(frozen=True)
class ScanTruth:
    """What the scan shows, for training and for scoring the digitiser."""

    depth: np.ndarray  # float64 (W,): the depth of every column
    values: Mapping[str, np.ndarray]  # float64 (W,) per curve: source value, NaN in gaps
    hidden: Mapping[str, np.ndarray]  # bool (W,) per curve: the curve touches missing pixels
    mask: np.ndarray  # uint8 (H, W): 0 background, k + 1 curve slot k + 1, 255 missing
    source_depth: np.ndarray  # float64 (N,): the source log's depth index
    source_values: Mapping[str, np.ndarray]  # float64 (N,) per curve, -999 in gaps


def truth_to_bytes(truth: ScanTruth, *, with_mask: bool = False) -> bytes:
    """The truth as a compressed ``.npz``: ``depth``, ``source_depth`` and per curve NAME
    ``value:NAME``, ``hidden:NAME``, ``source:NAME`` (and ``mask`` when asked)."""
    arrays = {"depth": truth.depth, "source_depth": truth.source_depth}
    for name in truth.values:
        arrays[f"value:{name}"] = truth.values[name]
        arrays[f"hidden:{name}"] = truth.hidden[name]
        arrays[f"source:{name}"] = truth.source_values[name]
    if with_mask:
        arrays["mask"] = truth.mask
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def truth_from_bytes(data: bytes) -> ScanTruth:
    """The inverse of :func:`truth_to_bytes` (an empty mask when none was written)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    names = [k.split(":", 1)[1] for k in arrays if k.startswith("value:")]
    return ScanTruth(
        depth=arrays["depth"],
        values={n: arrays[f"value:{n}"] for n in names},
        hidden={n: arrays[f"hidden:{n}"] for n in names},
        mask=arrays.get("mask", np.zeros((0, 0), dtype=np.uint8)),
        source_depth=arrays["source_depth"],
        source_values={n: arrays[f"source:{n}"] for n in names},
    )


@dataclass(frozen=True)
class SyntheticScan:
    image: np.ndarray  # uint8 (H, W); 0 marks missing pixels
    record: ScanRecord
    truth: ScanTruth

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _children(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _layered(rng: np.random.Generator, n: int, *, mean_beds: float) -> np.ndarray:
    """A blocky bed sequence in [0, 1], lightly smoothed, with fine noise: (n,) float64."""
    beds = max(2, int(n / mean_beds) + 1)
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(beds, n - 1), replace=False))
    levels = rng.beta(1.4, 1.4, size=cuts.size + 1)
    trace = levels[np.searchsorted(cuts, np.arange(n), side="right")]
    kernel = np.hanning(7)
    trace = np.convolve(np.pad(trace, 3, mode="edge"), kernel / kernel.sum(), mode="valid")
    noise = np.cumsum(rng.normal(0.0, 0.01, size=n))
    noise -= np.convolve(np.pad(noise, 10, mode="edge"), np.ones(21) / 21, mode="valid")
    return np.clip(trace + noise + rng.normal(0.0, 0.008, size=n), 0.0, 1.0)


def _with_gaps(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Zero to three runs of SOURCE_NULL, 8 to 150 samples long."""
    out = values.copy()
    for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
        length = int(rng.integers(8, 151))
        start = int(rng.integers(0, max(1, out.size - length)))
        out[start : start + length] = SOURCE_NULL
    return out


def synthetic_log(rng: np.random.Generator, spec: CurveSpec, n: int) -> np.ndarray:
    """Source samples of one curve, kept inside its track (2-98 %), with -999 gaps."""
    mean_beds = float(rng.uniform(8, 40))
    fraction = 0.02 + 0.96 * _layered(rng, n, mean_beds=mean_beds)
    if spec.scale == "log":
        lo, hi = math.log10(spec.left), math.log10(spec.right)
        values = 10.0 ** (lo + fraction * (hi - lo))
    else:
        values = spec.left + fraction * (spec.right - spec.left)
    return _with_gaps(rng, values)


def values_at_columns(
    source_depth: np.ndarray, source: np.ndarray, depth: np.ndarray
) -> np.ndarray:
    """Source values linearly interpolated at ``depth``; NaN wherever a neighbouring source
    sample is a gap (SOURCE_NULL). ``source_depth`` is regular and increasing."""
    step = source_depth[1] - source_depth[0]
    x = np.clip((depth - source_depth[0]) / step, 0.0, source_depth.size - 1.0)
    left = np.minimum(np.floor(x).astype(np.int64), source_depth.size - 2)
    t = x - left
    a, b = source[left], source[left + 1]
    gap = ((a == SOURCE_NULL) & (t < 1.0 - 1e-9)) | ((b == SOURCE_NULL) & (t > 1e-9))
    return np.where(gap, np.nan, a * (1.0 - t) + b * t)


def _band_coverage(rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of each pixel (rows (H, 1)) by a per-column band [lo, hi] (W,)."""
    top = np.maximum(rows - 0.5, lo[None, :])
    bottom = np.minimum(rows + 0.5, hi[None, :])
    return np.clip(bottom - top, 0.0, 1.0)


def curve_band(centre: np.ndarray, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the row interval a line through ``centre`` (W,) covers (NaN: not drawn)."""
    prev = np.concatenate([centre[:1], centre[:-1]])
    nxt = np.concatenate([centre[1:], centre[-1:]])
    a = np.where(np.isnan(prev), centre, 0.5 * (prev + centre))
    b = np.where(np.isnan(nxt), centre, 0.5 * (nxt + centre))
    lo = np.minimum(np.minimum(a, b), centre) - half_width
    hi = np.maximum(np.maximum(a, b), centre) + half_width
    return np.where(np.isnan(centre), np.inf, lo), np.where(np.isnan(centre), -np.inf, hi)


def _grid_lines(
    coord: np.ndarray, spacing: float, *, major_every: int
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of minor and major lines at multiples of ``spacing`` (float32 arrays)."""
    t = coord / np.float32(spacing)
    nearest = np.rint(t)
    distance = np.abs(t - nearest) * np.float32(spacing)
    major = (nearest.astype(np.int64) % major_every) == 0
    minor_cov = np.clip(np.float32(1.0) - distance, 0.0, 1.0)
    major_cov = np.where(major, np.clip(np.float32(1.5) - distance, 0.0, 1.0), 0.0)
    return minor_cov, major_cov.astype(np.float32)


def _depth_layout(rng: np.random.Generator, width: int) -> tuple[str, float, float, float]:
    """Depth unit, top depth, depth per column (signed) and the minor depth-line spacing."""
    unit = "ft" if rng.random() < 0.6 else "m"
    per_column = float(rng.choice(COLUMN_STEPS[unit]))
    line = next(s for s in DEPTH_LINE_STEPS if s / per_column >= 15)
    top = float(rng.integers(10, 300)) * 10.0
    if rng.random() < 0.15:  # a scan that runs upwards
        top = round(top + (width - 1) * per_column, 9)
        per_column = -per_column
    return unit, top, per_column, line


def _paper(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = float(rng.uniform(222, 245))
    along = np.cumsum(rng.normal(0, 0.05, size=width)).astype(np.float32)
    along -= np.linspace(along[0], along[-1], width, dtype=np.float32)
    across = np.linspace(-1, 1, height, dtype=np.float32) * np.float32(rng.uniform(-6, 6))
    return np.float32(base) + across[:, None] + np.clip(along, -8, 8)[None, :]


def _draw_text(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    curves: tuple[CurveSpec, ...],
    depth: np.ndarray,
    depth_line: float,
) -> None:
    """Depth numbers at labelled depth lines and curve headers along the track, in place."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = image.shape
    font = ImageFont.load_default(size=int(rng.integers(11, 16)))
    sheet = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), mode="L")
    draw = ImageDraw.Draw(sheet)
    ink = int(rng.integers(60, 110))
    label_row = int(rng.integers(4, 24))
    per_column = depth[1] - depth[0]
    major = depth_line * MINOR_PER_MAJOR * 2
    first = math.ceil(min(depth[0], depth[-1]) / major) * major
    for value in np.arange(first, max(depth[0], depth[-1]), major):
        col = int(np.rint((value - depth[0]) / per_column))
        draw.text((col + 3, label_row), f"{value:g}", fill=ink, font=font)
    header_every = int(rng.integers(1400, 2600))
    for col in range(int(rng.integers(60, 400)), width - 200, header_every):
        for k, spec in enumerate(curves):
            row = height - 22 - 18 * k
            text = f"{spec.name} {spec.left:g} {spec.unit} ... {spec.right:g}"
            draw.text((col, row), text, fill=ink, font=font)
    image[:] = np.asarray(sheet, dtype=np.float32)


def _missing_pixels(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A torn edge or a dropout stripe on about a third of the scans: bool (H, W)."""
    missing = np.zeros((height, width), dtype=bool)
    kind = rng.random()
    if kind < 0.18:  # torn edge: a ragged bite from the top or bottom edge
        length = min(int(rng.integers(150, 900)), width // 2)
        start = int(rng.integers(0, width - length))
        reach = np.abs(np.cumsum(rng.normal(0, 6, size=length))) + rng.uniform(20, 0.6 * height)
        reach = np.minimum(reach * np.sin(np.linspace(0, np.pi, length)), height - 1)
        rows = np.arange(height)[:, None]
        bite = rows < reach[None, :]
        if rng.random() < 0.5:
            bite = bite[::-1]
        missing[:, start : start + length] = bite
    elif kind < 0.33:  # scanner dropout: whole columns lost
        length = min(int(rng.integers(20, 200)), width // 4)
        start = int(rng.integers(0, width - length))
        missing[:, start : start + length] = True
    return missing


def generate_scan(
    seed: int,
    *,
    width: int | None = None,
    height: int | None = None,
    n_curves: int | None = None,
    missing: bool | None = None,
) -> SyntheticScan:
    """Paint one synthetic scan. Sizes and curve count are drawn from the seed unless given;
    ``missing`` forces (True) or forbids (False) missing pixels."""
    (r_layout, r_log, r_paper, r_text, r_noise, r_missing) = _children(seed, 6)
    if width is None:
        width = int(r_layout.integers(WIDTH_RANGE[0], WIDTH_RANGE[1] + 1))
    if height is None:
        height = int(r_layout.integers(HEIGHT_RANGE[0], HEIGHT_RANGE[1] + 1))
    if width < 64 or height < 64:
        raise InputError(f"a scan needs at least 64 x 64 px, {width} x {height} is given")
    if n_curves is None:
        n_curves = 1 + int(r_layout.random() < 0.6)
    if n_curves not in (1, 2):
        raise InputError(f"a scan holds 1 or 2 curves, {n_curves} is given")
    kinds = [GAMMA, RESISTIVITY]
    r_layout.shuffle(kinds)
    curves = tuple(kinds[:n_curves])

    unit, top, per_column, depth_line = _depth_layout(r_layout, width)
    bottom = round(top + (width - 1) * per_column, 9)
    record = ScanRecord(
        scan_uri=f"synthetic://scan/{seed}",
        uwi=f"42-{seed % 1000:03d}-{seed:05d}",
        scan_id=f"S{seed:06d}",
        top_depth=top,
        bottom_depth=bottom,
        depth_unit=unit,
        curves=curves,
    )
    depth = column_depths(record, width)

    source_step = SOURCE_STEP[unit]
    low = min(top, bottom)
    source_depth = np.round(
        low - source_step + np.arange(int(abs(bottom - top) / source_step) + 3) * source_step, 6
    )
    source_values = {spec.name: synthetic_log(r_log, spec, source_depth.size) for spec in curves}
    values = {
        name: values_at_columns(source_depth, src, depth) for name, src in source_values.items()
    }

    skew = float(r_layout.uniform(-1.5, 1.5)) / 10_000.0  # rows per column
    columns = np.arange(width, dtype=np.float64)
    drift = skew * (columns - width / 2)  # (W,) row offset of the sheet
    rows = np.arange(height, dtype=np.float32)[:, None]

    image = _paper(r_paper, height, width)
    sheet_rows = rows - drift.astype(np.float32)[None, :]
    minor, major = _grid_lines(
        sheet_rows, (height - 1) / GRID_DIVISIONS, major_every=MINOR_PER_MAJOR
    )
    image -= np.float32(r_paper.uniform(20, 35)) * minor + np.float32(35) * major
    depth_coord = (depth / abs(per_column)).astype(np.float32)[None, :]  # in columns
    lean = np.float32(r_layout.uniform(-0.8, 0.8) / height)
    minor, major = _grid_lines(
        depth_coord + lean * rows, depth_line / abs(per_column), major_every=MINOR_PER_MAJOR
    )
    image -= np.float32(r_paper.uniform(20, 35)) * minor + np.float32(35) * major
    del minor, major, sheet_rows, depth_coord
    _draw_text(image, r_text, curves=curves, depth=depth, depth_line=depth_line)

    mask = np.zeros((height, width), dtype=np.uint8)
    bands = {}
    for slot in reversed(range(len(curves))):  # slot 1 on top
        spec = curves[slot]
        ink, half_width = SLOT_STYLES[slot]
        centre = fraction_to_row(value_to_fraction(values[spec.name], spec), height) + drift
        lo, hi = curve_band(centre, half_width)
        cover = _band_coverage(rows, lo.astype(np.float32), hi.astype(np.float32))
        image += cover * (np.float32(ink) - image)
        mask[cover >= 0.5] = slot + 1
        bands[spec.name] = (lo, hi)

    sigma = np.float32(r_noise.uniform(2.5, 7.0))
    image += r_noise.standard_normal((height, width), dtype=np.float32) * sigma
    dust = r_noise.integers(0, height * width, size=int(height * width * 2e-5))
    image.ravel()[dust] = r_noise.uniform(30, 140, size=dust.size)
    scan = np.clip(np.rint(image), 1, 255).astype(np.uint8)

    lost = _missing_pixels(r_missing, height, width)
    while missing and not lost.any():
        lost = _missing_pixels(r_missing, height, width)
    if missing is False:
        lost[:] = False
    hidden = {name: np.zeros(width, dtype=bool) for name in values}
    if lost.any():
        scan[lost] = MISSING_PIXEL
        mask[lost] = MASK_MISSING
        for name, (lo, hi) in bands.items():
            near = (rows >= (lo - 1.5)[None, :]) & (rows <= (hi + 1.5)[None, :])
            hidden[name] = (near & lost).any(axis=0)

    truth = ScanTruth(
        depth=depth,
        values=values,
        hidden=hidden,
        mask=mask,
        source_depth=source_depth,
        source_values=source_values,
    )
    return SyntheticScan(image=scan, record=record, truth=truth)
