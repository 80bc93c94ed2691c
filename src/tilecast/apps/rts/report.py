"""The QC report of a thaw-slump run (``tilecast rts report``): one static HTML page.

A person should be able to judge a run from it in a minute, so the page opens with the
verdict: a list of checks (errors, warnings, notes, passes) and the numbers they rest on, then
a table of regions, the chips, the distributions, the overview maps and finally the run log.

- **Checks**: every listed tile committed or skipped with a reason; QC errors and sentinel
  counts (non-zero is highlighted); missing mosaics and GeoPackage, named; shards that disagree
  on the model, basemap or settings; the run log's area against the polygons'; polygons whose
  max_prob is below the threshold; detections in the log but no polygons (and the reverse).
- **Overview per region**: the basemap downsampled to about :data:`OVERVIEW_LONG_SIDE` px,
  the probability (each overview pixel shows the maximum it covers, so small slumps stay
  visible) where it is at least :data:`PROB_DISPLAY_MIN`, polygon outlines (and a ring around
  polygons too small to see), the mosaic's NoData hatched, a scale bar in map kilometres, a
  north arrow pointing to true north (in polar stereographic it is not "up") and the extent
  in the caption.
- **Chips**: basemap crops around the largest, the most confident (highest max_prob) and the
  least confident (lowest mean_prob) polygons, ``n_chips`` each, never showing a polygon twice.
- **Histograms** of polygon area (log x axis) and of max_prob (with mean_prob and the threshold).

Several run logs (``logs/inference_log.<shard>.json``) are summed; an
``inference_log.json`` that already lists every shard's tiles is taken as the combined log
instead (see :func:`combine_run_logs`).

Use :func:`make_report` for a :class:`ReportSummary` (what a CLI prints) or
:func:`build_report` for just the path. Needs matplotlib (the ``report`` extra); rendering
uses the Agg canvas directly, never pyplot, so no display and no global state are touched.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any, Literal

import numpy as np

from tilecast.apps.rts import report_template as tpl
from tilecast.errors import InputError, StorageError, TilecastError
from tilecast.grid.pixelgrid import window_bounds
from tilecast.grid.windows import Window
from tilecast.io import report_files as files
from tilecast.io import storage

__all__ = [
    "Check",
    "ReportSummary",
    "RunTotals",
    "build_report",
    "combine_run_logs",
    "make_report",
    "select_chips",
    "true_north",
]

log = logging.getLogger(__name__)

Level = Literal["error", "warn", "info", "ok"]
_SEVERITY = {"error": 0, "warn": 1, "info": 2, "ok": 3}

#: Probabilities below this are not drawn on the overview maps.
PROB_DISPLAY_MIN = 0.2
#: The long side of an overview map, in pixels read from the mosaic and the basemap.
OVERVIEW_LONG_SIDE = 1500
#: Chips: at least this many basemap pixels a side, and at most this many pixels shown.
CHIP_MIN_PX = 96
CHIP_MAX_PX = 320

EXPECTED_FIELDS = (
    "rts_id",
    "area_m2",
    "perimeter_m",
    "centroid_lat",
    "centroid_lon",
    "mean_prob",
    "max_prob",
    "detection_scale",
    "tile_ids",
    "region",
)
#: Run-log fields every shard of one run must agree on.
IDENTITY_FIELDS = (
    "model_version",
    "model_checkpoint",
    "bundle_digest",
    "normalization_stats_hash",
    "basemap",
    "basemap_version",
    "scales_used",
    "tta_config",
    "threshold",
    "tile_size",
    "precision",
)
#: The region of tiles recorded without one (the merge step's rule: ``region_all_*.tif``).
DEFAULT_REGION = "all"
_COUNT_FIELDS = ("skipped_reasons", "sentinel_counts", "qc_errors")
_HIDDEN_LOG_FIELDS = ("tiles", "runs")

_OUTLINE = "#00e5ff"
_CHIP_OUTLINE = "#ffe000"
_PROB_CMAP = "plasma"


# -- value types -------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of the verdict: ``level`` is error, warn, info or ok."""

    level: Level
    text: str


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`make_report` produced, for a CLI to print.

    ``n_regions`` counts every region the report covers (with or without mosaics);
    ``missing_files`` are output files that should exist and do not (relative paths);
    ``checks`` are the verdict lines, most severe first.
    """

    path: str
    n_polygons: int
    n_regions: int
    total_area_km2: float
    n_images: int
    missing_files: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(c.text for c in self.checks if c.level == "error")

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(c.text for c in self.checks if c.level == "warn")

    def lines(self) -> list[str]:
        """A short plain-text summary: the path, the totals, then every error and warning."""
        out = [
            f"report     {self.path}",
            f"polygons   {self.n_polygons} in {self.n_regions} region(s), "
            f"{self.total_area_km2:.4f} km²",
        ]
        out += [f"ERROR      {text}" for text in self.errors]
        out += [f"warning    {text}" for text in self.warnings]
        return out


@dataclass(frozen=True)
class RunTotals:
    """The run logs combined: counts summed, identity fields compared."""

    used: tuple[str, ...]  # the log files the counts come from
    how: str  # how they were combined, in words
    first: Mapping[str, Any]  # the first used log (model, basemap, settings)
    disagreements: Mapping[str, tuple[str, ...]]  # identity field -> distinct values
    n_tiles_total: int | None
    n_tiles_processed: int
    n_tiles_skipped: int
    n_tiles_with_detection: int
    skipped_reasons: Mapping[str, int]
    sentinel_counts: Mapping[str, int]
    qc_errors: Mapping[str, int]
    processing_time_hours: float
    gpu_types: tuple[str, ...]
    total_rts_area_km2: float | None
    inference_date: str | None  # the earliest
    not_complete: tuple[str, ...]  # logs whose status is not "complete"
    n_missing: int  # listed tiles neither committed nor skipped (final_check)
    not_done: Mapping[str, int]  # reason -> tiles not done, a rerun retries them (final_check)
    n_duplicate_tiles: int  # tiles listed by more than one used log
    regions: tuple[str, ...] = ()  # regions of the done tiles (each must have mosaics)


@dataclass(frozen=True)
class ChipPick:
    """A polygon chosen for a chip: its row, the group showing it, its rank in every group."""

    row: int
    group: str
    ranks: Mapping[str, int] = field(default_factory=dict)  # group -> 1-based rank


CHIP_GROUPS: tuple[tuple[str, str], ...] = (
    ("largest", "Largest detections (area_m2)"),
    ("most_confident", "Most confident (highest max_prob)"),
    ("least_confident", "Least confident (lowest mean_prob)"),
)
_GROUP_SHORT = {
    "largest": "largest",
    "most_confident": "most confident",
    "least_confident": "least confident",
}


# -- pure pieces -------------------------------------------------------------------------


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def combine_run_logs(logs: Sequence[files.RunLogFile]) -> RunTotals | None:
    """Sum the counts of the run logs; None when none could be read.

    ``inference_log.json`` together with shard logs is taken as the combined log (the shard
    logs are not added again) when its tile record holds every shard's tiles; otherwise every
    log is taken as a separate run and summed.
    """
    readable = [f for f in logs if f.data is not None]
    if not readable:
        return None
    main = next((f for f in readable if f.name == "inference_log.json"), None)
    shards = [f for f in readable if f is not main]
    used = readable
    if main is not None and shards:
        main_tiles = set((main.data or {}).get("tiles") or {})
        shard_tiles = set().union(*(set((f.data or {}).get("tiles") or {}) for f in shards))
        if main_tiles and shard_tiles <= main_tiles:
            used = [main]
            how = (
                f"inference_log.json, which lists the tiles of all {len(shards)} shard log(s) "
                "(they are not added again)"
            )
        else:
            how = f"{len(used)} run logs summed (inference_log.json and shard logs)"
    elif len(used) == 1:
        how = f"one run log ({used[0].name})"
    else:
        how = f"{len(used)} shard logs summed"
    datas = [f.data or {} for f in used]

    disagreements = {}
    for name in IDENTITY_FIELDS:
        values = {_key((f.data or {}).get(name)) for f in readable if name in (f.data or {})}
        if len(values) > 1:
            disagreements[name] = tuple(sorted(values))

    sums: dict[str, Counter[str]] = {name: Counter() for name in _COUNT_FIELDS}
    for data in datas:
        for name in _COUNT_FIELDS:
            value = data.get(name) or {}
            if isinstance(value, Mapping):
                sums[name].update({str(k): _int(v) for k, v in value.items()})

    totals = [data.get("n_tiles_total") for data in datas if data.get("n_tiles_total") is not None]
    areas = [
        float(data["total_rts_area_km2"])
        for data in datas
        if isinstance(data.get("total_rts_area_km2"), int | float)
    ]
    dates = sorted(str(d["inference_date"]) for d in datas if d.get("inference_date"))
    tile_owners: Counter[str] = Counter()
    regions: set[str] = set()
    for data in datas:
        tiles = data.get("tiles") or {}
        if isinstance(tiles, Mapping):
            tile_owners.update(tiles.keys())
            regions.update(
                str(t.get("region") or DEFAULT_REGION)
                for t in tiles.values()
                if isinstance(t, Mapping) and t.get("status") == "done"
            )
    missing = 0
    not_done: Counter[str] = Counter()
    for data in datas:
        check = data.get("final_check")
        if isinstance(check, Mapping):
            missing += _int(check.get("n_missing"))
            reasons = check.get("not_done")
            if isinstance(reasons, Mapping):
                not_done.update({str(k): _int(v) for k, v in reasons.items()})
    return RunTotals(
        used=tuple(f.name for f in used),
        how=how,
        first=datas[0],
        disagreements=disagreements,
        n_tiles_total=sum(_int(t) for t in totals) if totals else None,
        n_tiles_processed=sum(_int(d.get("n_tiles_processed")) for d in datas),
        n_tiles_skipped=sum(_int(d.get("n_tiles_skipped")) for d in datas),
        n_tiles_with_detection=sum(_int(d.get("n_tiles_with_detection")) for d in datas),
        skipped_reasons=dict(sorted(sums["skipped_reasons"].items())),
        sentinel_counts=dict(sorted(sums["sentinel_counts"].items())),
        qc_errors=dict(sorted(sums["qc_errors"].items())),
        processing_time_hours=sum(float(d.get("processing_time_hours") or 0.0) for d in datas),
        gpu_types=tuple(sorted({str(d["gpu_type"]) for d in datas if d.get("gpu_type")})),
        total_rts_area_km2=sum(areas) if areas else None,
        inference_date=dates[0] if dates else None,
        not_complete=tuple(
            f.name for f, d in zip(used, datas, strict=True) if d.get("status") != "complete"
        ),
        n_missing=missing,
        not_done=dict(sorted(not_done.items())),
        n_duplicate_tiles=sum(1 for n in tile_owners.values() if n > 1),
        regions=tuple(sorted(regions)),
    )


def _ordering(values: np.ndarray, *, descending: bool) -> np.ndarray:
    """Row order by ``values`` (NaN last, ties by row)."""
    v = np.asarray(values, dtype=float)
    key = np.where(np.isnan(v), np.inf, -v if descending else v)
    return np.lexsort((np.arange(len(v)), key))


def select_chips(
    area: np.ndarray, max_prob: np.ndarray, mean_prob: np.ndarray, n: int
) -> dict[str, list[ChipPick]]:
    """Up to ``n`` polygons per group (:data:`CHIP_GROUPS`), each polygon in one group only.

    Groups are filled in order (largest, most confident, least confident); a later group skips
    polygons an earlier one shows and takes the next in its own order. Each pick carries its
    rank in every group whose top ``n`` it is in (and its rank in its own group).
    """
    orders = {
        "largest": _ordering(area, descending=True),
        "most_confident": _ordering(max_prob, descending=True),
        "least_confident": _ordering(mean_prob, descending=False),
    }
    rank_of = {g: {int(row): i + 1 for i, row in enumerate(order)} for g, order in orders.items()}
    shown: set[int] = set()
    picks: dict[str, list[ChipPick]] = {}
    for group, _title in CHIP_GROUPS:
        chosen = []
        for row in orders[group]:
            if len(chosen) >= n:
                break
            row = int(row)
            if row in shown:
                continue
            shown.add(row)
            ranks = {
                g: rank_of[g][row] for g, _ in CHIP_GROUPS if g == group or rank_of[g][row] <= n
            }
            chosen.append(ChipPick(row=row, group=group, ranks=ranks))
        picks[group] = chosen
    return picks


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``limit`` (a scale bar's length)."""
    if limit <= 0 or not math.isfinite(limit):
        return 0.0
    exp = math.floor(math.log10(limit))
    for mult in (5, 2, 1):
        length = mult * 10.0**exp
        if length <= limit:
            return length
    return 10.0**exp


def to_display_rgb(raw: np.ndarray, valid: np.ndarray, dtype: str) -> np.ndarray:
    """Basemap bands ``(1 or 3, h, w)`` as an RGBA float image ``(h, w, 4)`` in [0, 1].

    uint8 is shown as is; other types are stretched per band between the 2nd and 98th
    percentile of the valid pixels. Invalid pixels are transparent.
    """
    bands = raw.astype(np.float32)
    if dtype == "uint8":
        bands = bands / 255.0
    else:
        for i in range(bands.shape[0]):
            values = bands[i][valid]
            if values.size:
                lo, hi = np.percentile(values, [2, 98])
                bands[i] = (bands[i] - lo) / (hi - lo) if hi > lo else bands[i] * 0 + 0.5
    if bands.shape[0] == 1:
        bands = np.repeat(bands, 3, axis=0)
    rgba = np.empty((*valid.shape, 4), dtype=np.float32)
    rgba[..., :3] = np.clip(np.moveaxis(bands, 0, -1), 0, 1)
    rgba[..., 3] = valid
    return rgba


def overview_shape(height: int, width: int, long_side: int = OVERVIEW_LONG_SIDE) -> tuple[int, int]:
    """The overview's ``(h, w)``: the raster shrunk so its long side is at most ``long_side``."""
    factor = max(height, width) / long_side
    if factor <= 1:
        return (height, width)
    return (max(1, round(height / factor)), max(1, round(width / factor)))


def _fmt_area(m2: float) -> str:
    if not math.isfinite(m2):
        return "n/a"
    if m2 >= 10_000:
        return f"{m2:,.0f} m² ({m2 / 10_000:.2f} ha)"
    return f"{m2:,.0f} m²"


def _fmt_num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _fmt_date(value: str | None) -> str:
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


def _fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"


def _fmt_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fmt_value(v)}" for k, v in value.items()) or "{}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt_value(v) for v in value) or "[]"
    return str(value)


def _fmt_scales(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(f"{float(v):g}" for v in value)
    return _fmt_value(value)


# -- the polygons ------------------------------------------------------------------------


@dataclass
class _Polygons:
    """The GeoPackage's polygons as plain columns (NaN where a field is missing)."""

    frame: Any  # GeoDataFrame (possibly empty); None when unreadable or missing
    crs: str | None
    missing_fields: tuple[str, ...]

    def __len__(self) -> int:
        return 0 if self.frame is None else len(self.frame)

    def column(self, name: str) -> np.ndarray:
        if self.frame is None or name not in self.frame.columns:
            return np.full(len(self), np.nan)
        import pandas as pd

        return pd.to_numeric(self.frame[name], errors="coerce").to_numpy(dtype=float)

    def values(self, name: str) -> list[Any]:
        if self.frame is None or name not in self.frame.columns:
            return [None] * len(self)
        return list(self.frame[name])

    def in_crs(self, crs: str | None) -> Any:
        """The frame in ``crs`` (unchanged when it is already there or when either is unknown)."""
        if self.frame is None or crs is None or self.frame.crs is None:
            return self.frame
        from pyproj import CRS

        if CRS.from_user_input(self.frame.crs) == CRS.from_user_input(crs):
            return self.frame
        return self.frame.to_crs(crs)


def _load_polygons(output: str, checks: list[Check]) -> _Polygons:
    try:
        frame = files.read_predictions(output)
    except StorageError as exc:
        checks.append(Check("error", f"{files.PREDICTIONS_PATH} cannot be read: {exc}"))
        return _Polygons(None, None, ())
    if frame is None:
        checks.append(Check("error", f"{files.PREDICTIONS_PATH} is missing"))
        return _Polygons(None, None, ())
    crs = frame.crs.to_string() if frame.crs is not None else None
    if crs is None:
        checks.append(Check("warn", f"{files.PREDICTIONS_PATH} has no CRS; EPSG:3413 assumed"))
        frame = frame.set_crs("EPSG:3413")
        crs = "EPSG:3413"
    elif frame.crs.to_epsg() != 3413:
        checks.append(Check("warn", f"{files.PREDICTIONS_PATH} is in {crs}, expected EPSG:3413"))
    missing = tuple(f for f in EXPECTED_FIELDS if f not in frame.columns)
    if missing:
        checks.append(
            Check("warn", f"{files.PREDICTIONS_PATH} lacks the field(s) {', '.join(missing)}")
        )
    return _Polygons(frame.reset_index(drop=True), crs, missing)


# -- figures (matplotlib, Agg canvas, no pyplot) -------------------------------------------


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the QC report needs matplotlib: install tilecast with the 'report' extra"
        ) from exc
    return matplotlib


def _figure(width_in: float, height_in: float, *, layout: str | None = None) -> Any:
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, *, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _outline_segments(geoms: Sequence[Any], tolerance: float) -> list[np.ndarray]:
    segments = []
    for geom in geoms:
        if geom is None or geom.is_empty:
            continue
        simple = geom.simplify(tolerance) if tolerance > 0 else geom
        if simple.is_empty:
            simple = geom
        parts = getattr(simple, "geoms", [simple])
        for part in parts:
            if part.geom_type != "Polygon":
                continue
            for ring in (part.exterior, *part.interiors):
                segments.append(np.asarray(ring.coords)[:, :2])
    return segments


def _km_axes(ax: Any, crs: str, bounds: tuple[float, float, float, float]) -> None:
    from matplotlib.ticker import FuncFormatter

    span_km = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / 1000
    digits = 0 if span_km >= 20 else 1 if span_km >= 2 else 2 if span_km >= 0.2 else 3
    fmt = FuncFormatter(lambda v, _pos: f"{v / 1000:,.{digits}f}")
    ax.xaxis.set_major_formatter(fmt)
    ax.yaxis.set_major_formatter(fmt)
    ax.set_xlabel(f"x (km, {crs})", fontsize=9)
    ax.set_ylabel(f"y (km, {crs})", fontsize=9)
    ax.tick_params(labelsize=8)


def _scale_bar(ax: Any, bounds: tuple[float, float, float, float], *, fontsize: int = 9) -> None:
    import matplotlib.patheffects as pe
    from matplotlib.patches import Rectangle

    minx, miny, maxx, maxy = bounds
    w, h = maxx - minx, maxy - miny
    length = nice_length(0.22 * w)
    if length <= 0:
        return
    x, y, bar_h = minx + 0.04 * w, miny + 0.045 * h, max(0.012 * h, 0.004 * w)
    ax.add_patch(
        Rectangle(
            (x - 0.015 * w, y - 0.02 * h),
            length + 0.03 * w,
            bar_h + 0.075 * h,
            facecolor="white",
            alpha=0.75,
            edgecolor="none",
            zorder=6,
        )
    )
    for i in range(4):
        ax.add_patch(
            Rectangle(
                (x + i * length / 4, y),
                length / 4,
                bar_h,
                facecolor="black" if i % 2 == 0 else "white",
                edgecolor="black",
                linewidth=0.6,
                zorder=7,
            )
        )
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    text = ax.text(
        x + length / 2,
        y + bar_h + 0.01 * h,
        label,
        ha="center",
        va="bottom",
        fontsize=fontsize,
        zorder=8,
    )
    text.set_path_effects([pe.withStroke(linewidth=2.5, foreground="white")])


def true_north(crs: str, x: float, y: float) -> tuple[float, float] | None:
    """Unit vector ``(dx, dy)`` of true north at map point ``(x, y)``; None if not computable.

    In EPSG:3413 (polar stereographic) north points to the pole at the origin, not "up".
    """
    from pyproj import Transformer
    from pyproj.exceptions import CRSError, ProjError

    try:
        to_geo = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        to_map = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        lon, lat = to_geo.transform(x, y)
        x2, y2 = to_map.transform(lon, min(lat + 0.05, 89.999))
    except (CRSError, ProjError):
        return None
    dx, dy = x2 - x, y2 - y
    norm = math.hypot(dx, dy)
    if not math.isfinite(norm) or norm == 0:
        return None
    return dx / norm, dy / norm


def _north_arrow(ax: Any, bounds: tuple[float, float, float, float], crs: str) -> None:
    import matplotlib.patheffects as pe

    minx, miny, maxx, maxy = bounds
    w, h = maxx - minx, maxy - miny
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    north = true_north(crs, cx, cy)
    if north is None:
        return
    size = 0.07 * min(w, h)
    tail = (maxx - 0.07 * w - north[0] * size / 2, maxy - 0.11 * h - north[1] * size / 2)
    head = (tail[0] + north[0] * size, tail[1] + north[1] * size)
    stroke = [pe.withStroke(linewidth=4, foreground="white")]
    ax.annotate(
        "",
        xy=head,
        xytext=tail,
        arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 2, "mutation_scale": 16},
        zorder=8,
    ).arrow_patch.set_path_effects(stroke)
    text = ax.text(
        head[0] + north[0] * size * 0.35,
        head[1] + north[1] * size * 0.35,
        "N",
        ha="center",
        va="center",
        fontsize=11,
        fontweight="bold",
        zorder=8,
    )
    text.set_path_effects(stroke)


def _overlay_prob(prob: np.ndarray) -> np.ndarray:
    """RGBA of the probability where it is >= PROB_DISPLAY_MIN; NoData hatched grey-blue."""
    import matplotlib

    cmap = matplotlib.colormaps[_PROB_CMAP]
    p = np.nan_to_num(prob, nan=0.0)
    shown = np.isfinite(prob) & (prob >= PROB_DISPLAY_MIN)
    t = np.clip((p - PROB_DISPLAY_MIN) / (1 - PROB_DISPLAY_MIN), 0, 1)
    rgba = cmap(t).astype(np.float32)
    rgba[..., 3] = np.where(shown, 0.55 + 0.4 * t, 0.0)
    nodata = np.isnan(prob)
    if nodata.any():
        rows, cols = np.indices(prob.shape)
        stripe = ((rows + cols) % 10) < 3
        rgba[nodata] = (0.30, 0.33, 0.45, 0.45)
        rgba[nodata & stripe] = (0.18, 0.20, 0.30, 0.85)
    return rgba


def _overview_png(
    *,
    title: str,
    bounds: tuple[float, float, float, float],
    crs: str,
    rgb: np.ndarray | None,
    prob: np.ndarray,
    geoms: Sequence[Any],
    threshold: float | None,
    binary_only: bool,
) -> bytes:
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    minx, miny, maxx, maxy = bounds
    w_px = prob.shape[1]
    aspect = (maxy - miny) / (maxx - minx)
    map_w = 9.6
    fig = _figure(map_w + 1.3, min(14.0, max(3.8, map_w * aspect)) + 0.9, layout="constrained")
    ax = fig.add_subplot()
    ax.set_facecolor("white")
    extent = (minx, maxx, miny, maxy)
    if rgb is not None:
        ax.imshow(rgb, extent=extent, interpolation="antialiased", zorder=1)
    ax.imshow(_overlay_prob(prob), extent=extent, interpolation="nearest", zorder=2)
    px = (maxx - minx) / w_px
    segments = _outline_segments(geoms, tolerance=px / 2)
    if segments:
        ax.add_collection(LineCollection(segments, colors=_OUTLINE, linewidths=1.0, zorder=4))
    small = []
    for geom in geoms:
        if geom is None or geom.is_empty:
            continue
        gx0, gy0, gx1, gy1 = geom.bounds
        if max(gx1 - gx0, gy1 - gy0) < 4 * px:
            point = geom.representative_point()
            small.append((point.x, point.y))
    if small:
        xs, ys = zip(*small, strict=True)
        ax.scatter(xs, ys, s=70, facecolors="none", edgecolors=_OUTLINE, linewidths=1.3, zorder=5)
    ax.set_xlim(minx, maxx)
    ax.set_ylim(miny, maxy)
    ax.set_aspect("equal")
    _km_axes(ax, crs, bounds)
    ax.set_title(title, fontsize=12)
    _scale_bar(ax, bounds)
    _north_arrow(ax, bounds, crs)
    handles = [
        Line2D([], [], color=_OUTLINE, lw=1.5, label="RTS polygon"),
        Line2D(
            [],
            [],
            ls="none",
            marker="o",
            mfc="none",
            mec=_OUTLINE,
            ms=8,
            label="polygon too small to see",
        ),
        Patch(
            facecolor=(0.30, 0.33, 0.45, 0.6),
            hatch="///",
            edgecolor=(0.18, 0.2, 0.3),
            label="no prediction (mosaic NoData)",
        ),
    ]
    if rgb is not None:
        handles.append(Patch(facecolor="white", edgecolor="0.4", label="no basemap pixels"))
    if binary_only:
        import matplotlib

        top = matplotlib.colormaps[_PROB_CMAP](1.0)
        handles.insert(0, Patch(facecolor=top, edgecolor="none", label="binary mosaic = 1"))
    else:
        mappable = ScalarMappable(norm=Normalize(PROB_DISPLAY_MIN, 1.0), cmap=_PROB_CMAP)
        label = f"probability (shown where ≥ {PROB_DISPLAY_MIN:g})"
        bar = fig.colorbar(mappable, ax=ax, shrink=0.6, pad=0.01, label=label)
        if threshold is not None and PROB_DISPLAY_MIN <= threshold <= 1:
            bar.ax.axhline(threshold, color="black", lw=1.5)
            bar.ax.text(
                1.6,
                threshold,
                "thr.",
                transform=bar.ax.get_yaxis_transform(),
                va="center",
                fontsize=7,
            )
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.07),
        ncol=len(handles),
        fontsize=8,
        frameon=False,
    )
    png = _png(fig, dpi=110)
    return png


def _chip_png(
    rgb: np.ndarray,
    bounds: tuple[float, float, float, float],
    target: Any,
    others: Sequence[Any],
) -> bytes:
    from matplotlib.collections import LineCollection

    fig = _figure(2.8, 2.8)
    ax = fig.add_axes((0, 0, 1, 1))
    minx, miny, maxx, maxy = bounds
    ax.imshow(rgb, extent=(minx, maxx, miny, maxy), interpolation="nearest")
    others_seg = _outline_segments(others, 0)
    if others_seg:
        ax.add_collection(
            LineCollection(others_seg, colors=_OUTLINE, linewidths=1.0, linestyles="--")
        )
    ax.add_collection(
        LineCollection(_outline_segments([target], 0), colors=_CHIP_OUTLINE, linewidths=1.8)
    )
    ax.set_xlim(minx, maxx)
    ax.set_ylim(miny, maxy)
    ax.set_axis_off()
    _scale_bar(ax, bounds, fontsize=8)
    return _png(fig, dpi=100)


def _area_hist_png(area: np.ndarray) -> bytes:
    a = area[np.isfinite(area) & (area > 0)]
    fig = _figure(5.6, 3.4, layout="constrained")
    ax = fig.add_subplot()
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo * 1.01:
        lo, hi = lo / 1.5, hi * 1.5
    bins = np.logspace(math.log10(lo), math.log10(hi), 31)
    ax.hist(a, bins=bins, color="#3f7fbf", edgecolor="white", linewidth=0.4)
    ax.set_xscale("log")
    median = float(np.median(a))
    ax.axvline(median, color="black", ls=":", lw=1.2, label=f"median {median:,.0f} m²")
    ax.set_xlabel("polygon area (m², log scale)")
    ax.set_ylabel("polygons")
    ax.set_title(f"Polygon area ({len(a):,} polygons)", fontsize=11)
    ax.legend(fontsize=8)
    return _png(fig)


def _prob_hist_png(max_prob: np.ndarray, mean_prob: np.ndarray, threshold: float | None) -> bytes:
    fig = _figure(5.6, 3.4, layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 41)
    mx = max_prob[np.isfinite(max_prob)]
    mn = mean_prob[np.isfinite(mean_prob)]
    ax.hist(mx, bins=bins, color="#d9822b", edgecolor="white", linewidth=0.4, label="max_prob")
    if mn.size:
        ax.hist(mn, bins=bins, histtype="step", color="#333333", lw=1.3, label="mean_prob")
    if threshold is not None:
        ax.axvline(threshold, color="#c81e1e", ls="--", lw=1.6, label=f"threshold {threshold:g}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_ylabel("polygons")
    ax.set_title(f"max_prob per polygon ({len(mx):,} polygons)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


# -- sections ------------------------------------------------------------------------------


@dataclass
class _Region:
    name: str
    mosaics: dict[str, str]
    missing: tuple[str, ...] = ()  # missing mosaic kinds
    n_polygons: int = 0
    area_m2: float = 0.0
    data_fraction: float | None = None
    html: str = ""
    n_images: int = 0


@dataclass
class _Context:
    polygons: _Polygons
    threshold: float | None
    basemap: Any  # tilecast.io.basemap.Basemap or None
    basemap_note: str
    checks: list[Check]

    def basemap_unreadable(self, message: str) -> None:
        """A basemap file that cannot be read: shown without it, said once per file."""
        lead = "basemap partly unreadable, shown without it: "
        path = message.split(": ", 1)[0]
        if not any(c.text.startswith(f"{lead}{path}: ") for c in self.checks):
            self.checks.append(Check("warn", f"{lead}{message}"))


def _region_section(ctx: _Context, region: _Region) -> None:
    kinds = region.mosaics
    source = kinds.get("prob") or kinds.get("binary")
    header = f'<h3 id="region-{escape(region.name)}">Region {escape(region.name)}</h3>'
    if region.missing:
        names = ", ".join(files.mosaic_name(region.name, k) for k in region.missing)
        header += f'<p class="missing">Missing: <code>{escape(names)}</code></p>'
    if source is None:
        region.html = header + '<p class="note">No probability or binary mosaic: no overview.</p>'
        return
    try:
        info = files.raster_info(source)
        shape = overview_shape(info.height, info.width)
        prob = files.read_reduced(source, shape)
    except StorageError as exc:
        ctx.checks.append(Check("error", f"region {region.name}: {exc}"))
        region.html = header + f'<p class="missing">Cannot read the mosaic: {escape(str(exc))}</p>'
        return
    crs = info.crs or "EPSG:3413"
    region.data_fraction = float(np.isfinite(prob).mean())
    rgb = None
    basemap_note = ctx.basemap_note
    bm = ctx.basemap
    if bm is not None:
        if not bm.crs_matches(crs):
            basemap_note = f"basemap not shown: it is in {bm.crs}, the mosaic in {crs}"
        else:
            raw, valid = files.read_basemap_view(
                bm,
                info.bounds,
                shape,
                bands=files.rgb_band_positions(bm),
                on_error=ctx.basemap_unreadable,
            )
            rgb = to_display_rgb(raw, valid, bm.dtype.name)
            basemap_note = ""
    frame = ctx.polygons.in_crs(crs)
    geoms: list[Any] = []
    if frame is not None and len(frame):
        minx, miny, maxx, maxy = info.bounds
        geoms = [g for g in frame.cx[minx:maxx, miny:maxy].geometry if g is not None]
    png = _overview_png(
        title=f"Region {region.name}",
        bounds=info.bounds,
        crs=crs,
        rgb=rgb,
        prob=prob,
        geoms=geoms,
        threshold=ctx.threshold,
        binary_only="prob" not in kinds,
    )
    minx, miny, maxx, maxy = info.bounds
    px = (maxx - minx) / shape[1]
    caption = (
        f"{escape(crs)} extent x {minx:,.0f} … {maxx:,.0f} m, y {miny:,.0f} … {maxy:,.0f} m "
        f"({(maxx - minx) / 1000:,.1f} × {(maxy - miny) / 1000:,.1f} km). "
        f"Mosaic {info.width:,} × {info.height:,} px at {info.res[0]:g} m, shown at "
        f"{px:,.1f} m per pixel; each pixel shows the maximum "
        f"{'value' if 'prob' not in kinds else 'probability'} it covers, drawn where ≥ "
        f"{PROB_DISPLAY_MIN:g}. {len(geoms):,} polygon(s) outlined. Scale bar in map units "
        f"(polar stereographic, true scale at 70° N); the arrow points to true north."
    )
    if "prob" not in kinds:
        caption += " <b>The probability mosaic is missing: the binary mosaic is shown.</b>"
    if basemap_note:
        caption += f" <b>{escape(basemap_note)}.</b>"
    region.html = header + tpl.figure(png, caption, alt=f"overview of region {region.name}")
    region.n_images = 1


def _chips_section(ctx: _Context, n_chips: int) -> tuple[str, int]:
    polygons = ctx.polygons
    if len(polygons) == 0 or n_chips == 0:
        return "", 0
    if ctx.basemap is None:
        return f'<p class="note">No chips: {escape(ctx.basemap_note)}.</p>', 0
    bm = ctx.basemap
    frame = polygons.in_crs(bm.crs)
    area = polygons.column("area_m2")
    max_prob = polygons.column("max_prob")
    mean_prob = polygons.column("mean_prob")
    if np.isnan(area).all():
        area = np.asarray(frame.geometry.area, dtype=float)
    picks = select_chips(area, max_prob, mean_prob, n_chips)
    ids = polygons.values("rts_id")
    scales = polygons.values("detection_scale")
    regions = polygons.values("region")
    grid = bm.grid
    bands = files.rgb_band_positions(bm)
    parts = []
    n_images = 0
    titles = dict(CHIP_GROUPS)
    for group, chosen in picks.items():
        parts.append(f"<h3>{escape(titles[group])}</h3>")
        if not chosen:
            earlier = [p for group_picks in picks.values() for p in group_picks]
            top = sorted(
                (p.ranks[group], _fmt_value(ids[p.row])) for p in earlier if group in p.ranks
            )
            listed = ", ".join(rts_id for _, rts_id in top)
            parts.append(f'<p class="note">Already shown above: rts_id {escape(listed)}.</p>')
            continue
        figs = []
        for pick in chosen:
            geom = frame.geometry.iloc[pick.row]
            if geom is None or geom.is_empty:
                continue
            gx0, gy0, gx1, gy1 = geom.bounds
            side = max(gx1 - gx0, gy1 - gy0) * 1.6
            cols = max(CHIP_MIN_PX, math.ceil(side / grid.res_x))
            rows = max(CHIP_MIN_PX, math.ceil(side / grid.res_y))
            cx, cy = (gx0 + gx1) / 2, (gy0 + gy1) / 2
            col0 = math.floor((cx - grid.x0) / grid.res_x - cols / 2)
            row0 = math.floor((grid.y0 - cy) / grid.res_y - rows / 2)
            bounds = window_bounds(grid, Window(row0, col0, rows, cols))
            factor = max(rows, cols) / CHIP_MAX_PX
            out_shape = (
                (rows, cols)
                if factor <= 1
                else (max(1, round(rows / factor)), max(1, round(cols / factor)))
            )
            raw, valid = files.read_basemap_view(
                bm, bounds, out_shape, bands=bands, on_error=ctx.basemap_unreadable
            )
            rgb = to_display_rgb(raw, valid, bm.dtype.name)
            near = frame.cx[bounds[0] : bounds[2], bounds[1] : bounds[3]]
            others = [g for i, g in zip(near.index, near.geometry, strict=True) if i != pick.row]
            png = _chip_png(rgb, bounds, geom, others)
            rank_text = ", ".join(f"{_GROUP_SHORT[g]} #{r}" for g, r in pick.ranks.items())
            caption = (
                f"<b>rts_id {escape(_fmt_value(ids[pick.row]))}</b> · area "
                f"{escape(_fmt_area(area[pick.row]))}<br>max_prob "
                f"{_fmt_num(max_prob[pick.row])} · mean_prob {_fmt_num(mean_prob[pick.row])}"
                f"<br>detection_scale {escape(_fmt_value(scales[pick.row]))} · region "
                f'{escape(_fmt_value(regions[pick.row]))}<br><span class="note">'
                f"{escape(rank_text)}; {(bounds[2] - bounds[0]):,.0f} m wide</span>"
            )
            figs.append(tpl.figure(png, caption, alt=f"chip of rts_id {ids[pick.row]}", width=280))
            n_images += 1
        parts.append('<div class="chips">' + "".join(figs) + "</div>")
    intro = (
        '<p class="note">Basemap RGB around each polygon (yellow: the polygon; cyan dashed: '
        f"its neighbours). Up to {n_chips} per group; a polygon is shown once, in the first "
        "group it belongs to, with its rank in each group.</p>"
    )
    return intro + "".join(parts), n_images


def _histograms_section(polygons: _Polygons, threshold: float | None) -> tuple[str, int]:
    if len(polygons) == 0:
        return "", 0
    area = polygons.column("area_m2")
    max_prob = polygons.column("max_prob")
    figs = []
    if np.isfinite(area).any() and (area[np.isfinite(area)] > 0).any():
        figs.append(
            tpl.figure(
                _area_hist_png(area),
                "Polygon area (area_m2, geodesic), log-scaled x axis.",
                alt="histogram of polygon area",
            )
        )
    if np.isfinite(max_prob).any():
        figs.append(
            tpl.figure(
                _prob_hist_png(max_prob, polygons.column("mean_prob"), threshold),
                "max_prob per polygon (bars), mean_prob (line) and the threshold (dashed).",
                alt="histogram of max_prob",
            )
        )
    return '<div class="hists">' + "".join(figs) + "</div>", len(figs)


# -- checks ------------------------------------------------------------------------------


def _assess(
    totals: RunTotals | None,
    logs: Sequence[files.RunLogFile],
    polygons: _Polygons,
    regions: Sequence[_Region],
    checks: list[Check],
) -> list[Check]:
    out = list(checks)
    for f in logs:
        if f.error:
            out.append(Check("error", f"logs/{f.name}: {f.error}"))
    if totals is None:
        if not any(f.error for f in logs):
            out.append(Check("error", "no run log: logs/inference_log*.json is missing"))
    else:
        accounted = totals.n_tiles_processed + totals.n_tiles_skipped
        n_not_done = sum(totals.not_done.values())
        if n_not_done:
            out.append(
                Check(
                    "error",
                    f"incomplete: {n_not_done:,} tile(s) not done "
                    f"({_fmt_counts(totals.not_done)}); no _SUCCESS. Rerunning the same "
                    "command retries them; mosaics, polygons and this page leave them out",
                )
            )
        if totals.n_tiles_total is not None and not n_not_done:
            if accounted < totals.n_tiles_total:
                out.append(
                    Check(
                        "error",
                        f"{totals.n_tiles_total - accounted:,} of {totals.n_tiles_total:,} "
                        "tiles are neither processed nor skipped",
                    )
                )
            else:
                out.append(
                    Check(
                        "ok",
                        f"all {totals.n_tiles_total:,} tiles accounted for "
                        f"({totals.n_tiles_processed:,} processed, {totals.n_tiles_skipped:,} skipped)",
                    )
                )
        if len(totals.used) > 1:
            out.append(Check("info", f"totals from {totals.how}"))
        if totals.n_missing and not n_not_done:
            out.append(
                Check("error", f"the final check lists {totals.n_missing:,} tile(s) not committed")
            )
        if totals.not_complete and not n_not_done:
            out.append(
                Check("warn", f"run not marked complete in {', '.join(totals.not_complete)}")
            )
        if totals.n_tiles_skipped:
            out.append(
                Check(
                    "info",
                    f"{totals.n_tiles_skipped:,} tile(s) skipped: "
                    f"{_fmt_counts(totals.skipped_reasons)}",
                )
            )
        n_qc = sum(totals.qc_errors.values())
        if n_qc:
            out.append(Check("error", f"QC errors: {_fmt_counts(totals.qc_errors)}"))
        else:
            out.append(Check("ok", "no QC errors"))
        n_sent = sum(totals.sentinel_counts.values())
        if n_sent:
            out.append(
                Check(
                    "warn",
                    f"sentinel/NoData values in the input: {_fmt_counts(totals.sentinel_counts)}",
                )
            )
        else:
            out.append(Check("ok", "no sentinel values counted"))
        for name, values in totals.disagreements.items():
            out.append(Check("warn", f"the run logs disagree on {name}: {' vs '.join(values)}"))
        if totals.n_duplicate_tiles:
            out.append(
                Check(
                    "warn", f"{totals.n_duplicate_tiles:,} tile(s) appear in more than one run log"
                )
            )
        if polygons.frame is not None:
            n = len(polygons)
            if totals.n_tiles_with_detection and n == 0:
                out.append(
                    Check(
                        "warn",
                        f"{totals.n_tiles_with_detection:,} tile(s) have detections but the "
                        "GeoPackage holds no polygon",
                    )
                )
            if n and totals.n_tiles_processed and not totals.n_tiles_with_detection:
                out.append(Check("warn", f"{n:,} polygon(s) but no tile recorded a detection"))
            area_km2 = float(np.nansum(polygons.column("area_m2"))) / 1e6
            logged = totals.total_rts_area_km2
            if logged is not None and abs(logged - area_km2) > max(0.01 * area_km2, 1e-6):
                out.append(
                    Check(
                        "warn",
                        f"the run log's total_rts_area_km2 ({logged:.4f}) differs from the "
                        f"polygons' ({area_km2:.4f})",
                    )
                )
    if polygons.frame is not None:
        n = len(polygons)
        if n == 0:
            out.append(Check("info", "no RTS polygons were detected (the GeoPackage is empty)"))
        else:
            max_prob = polygons.column("max_prob")
            threshold = None if totals is None else totals.first.get("threshold")
            if isinstance(threshold, int | float):
                low = int(np.sum(max_prob < threshold))
                if low:
                    out.append(
                        Check(
                            "warn",
                            f"{low:,} polygon(s) have max_prob below the threshold {threshold:g}",
                        )
                    )
            for name in ("max_prob", "mean_prob"):
                v = polygons.column(name)
                bad = int(np.sum(np.isfinite(v) & ((v < 0) | (v > 1))))
                if bad:
                    out.append(Check("error", f"{bad:,} polygon(s) have {name} outside [0, 1]"))
    missing = [files.mosaic_name(r.name, k) for r in regions for k in r.missing]
    if missing:
        out.append(Check("error", f"missing mosaic(s): {', '.join(missing)}"))
    elif regions:
        out.append(Check("ok", f"all mosaics present for {len(regions)} region(s)"))
    else:
        out.append(Check("warn", "no region mosaics in merged/"))
    return sorted(out, key=lambda c: _SEVERITY[c.level])


# -- the page ------------------------------------------------------------------------------


def _cards(totals: RunTotals | None, polygons: _Polygons, regions: Sequence[_Region]) -> str:
    n_poly = len(polygons)
    area_km2 = float(np.nansum(polygons.column("area_m2"))) / 1e6 if n_poly else 0.0
    n_missing = sum(len(r.missing) for r in regions)
    cards = [
        (
            "RTS polygons",
            f"{n_poly:,}" if polygons.frame is not None else "no GeoPackage",
            f"in {sum(1 for r in regions if r.n_polygons)} of {len(regions)} region(s)",
            "error" if polygons.frame is None else "",
        ),
        (
            "Total RTS area",
            f"{area_km2:,.4f} km²",
            "from the polygons"
            + (
                f" (run log: {totals.total_rts_area_km2:.4f})"
                if totals and totals.total_rts_area_km2 is not None
                else ""
            ),
            "",
        ),
        ("Missing mosaics", f"{n_missing}", "", "error" if n_missing else ""),
    ]
    if totals is not None:
        t = totals
        processed = t.n_tiles_processed
        share = (
            f"{processed / t.n_tiles_total:.1%} of {t.n_tiles_total:,}" if t.n_tiles_total else ""
        )
        n_qc, n_sent = sum(t.qc_errors.values()), sum(t.sentinel_counts.values())
        cards += [
            ("Tiles processed", f"{processed:,}", share, ""),
            (
                "Tiles skipped",
                f"{t.n_tiles_skipped:,}",
                _fmt_counts(t.skipped_reasons) if t.n_tiles_skipped else "",
                "",
            ),
            (
                "Tiles with detection",
                f"{t.n_tiles_with_detection:,}",
                f"{t.n_tiles_with_detection / processed:.1%} of processed" if processed else "",
                "",
            ),
            (
                "QC errors",
                f"{n_qc:,}",
                _fmt_counts(t.qc_errors) if n_qc else "",
                "error" if n_qc else "",
            ),
            (
                "Sentinel values",
                f"{n_sent:,}",
                _fmt_counts(t.sentinel_counts) if n_sent else "",
                "warn" if n_sent else "",
            ),
            (
                "Processing time",
                f"{t.processing_time_hours:.2f} h",
                f"summed over {len(t.used)} logs" if len(t.used) > 1 else "",
                "",
            ),
            ("GPU", ", ".join(t.gpu_types) or "—", "", ""),
            ("Threshold", _fmt_value(t.first.get("threshold")), "", ""),
            ("Scales", _fmt_scales(t.first.get("scales_used")), "", ""),
            ("TTA", _fmt_value(t.first.get("tta_config")), "", ""),
            (
                "Model version",
                _fmt_value(t.first.get("model_version")),
                _fmt_value(t.first.get("model_checkpoint")),
                "",
            ),
            (
                "Basemap version",
                _fmt_value(t.first.get("basemap_version")),
                _fmt_value(t.first.get("basemap")),
                "",
            ),
            ("Inference date", _fmt_date(t.inference_date), "", ""),
        ]
    return tpl.stat_cards(cards)


def _regions_table(regions: Sequence[_Region]) -> str:
    if not regions:
        return '<p class="note">No regions.</p>'
    rows, classes = [], []
    for r in regions:
        status = ["present" if k in r.mosaics else "MISSING" for k in files.MOSAIC_KINDS]
        rows.append(
            [
                r.name,
                *status,
                f"{r.n_polygons:,}",
                f"{r.area_m2 / 1e6:,.4f}",
                "—" if r.data_fraction is None else f"{r.data_fraction:.1%}",
            ]
        )
        classes.append("error" if r.missing else "")
    return tpl.table(
        [
            "region",
            "prob",
            "binary",
            "scale",
            "polygons",
            "area km²",
            "extent with predictions (approx.)",
        ],
        rows,
        numeric=[False, False, False, False, True, True, True],
        row_classes=classes,
    )


def _log_tables(logs: Sequence[files.RunLogFile], totals: RunTotals | None) -> str:
    readable = [f for f in logs if f.data is not None]
    if not readable:
        return '<p class="note">No readable run log.</p>'
    shown = readable[:8]
    names: list[str] = []
    for f in shown:
        for name in f.data or {}:
            if name not in names and name not in _HIDDEN_LOG_FIELDS:
                names.append(name)
    disagree = totals.disagreements if totals else {}
    rows = [[name, *(_fmt_value((f.data or {}).get(name)) for f in shown)] for name in names]
    classes = ["warn" if name in disagree else "" for name in names]
    parts = []
    if totals is not None:
        parts.append(f'<p class="note">Totals above: {escape(totals.how)}.</p>')
    if len(readable) > len(shown):
        parts.append(
            f'<p class="note">The first {len(shown)} of {len(readable)} run logs are shown.</p>'
        )
    parts.append(tpl.table(["field", *(f.name for f in shown)], rows, row_classes=classes))
    run_rows = []
    for f in readable:
        for i, run in enumerate((f.data or {}).get("runs") or []):
            if isinstance(run, Mapping):
                run_rows.append(
                    [
                        f.name,
                        i + 1,
                        _fmt_value(run.get("started")),
                        _fmt_value(run.get("finished")),
                        _fmt_value(run.get("tiles_already_recorded")),
                        _fmt_value(run.get("device")),
                    ]
                )
    if run_rows:
        parts.append("<h3>Runs and restarts</h3>")
        parts.append(
            tpl.table(
                ["log", "run", "started", "finished", "tiles already recorded", "device"],
                run_rows[:200],
                numeric=[False, True, False, False, True, False],
            )
        )
    return "".join(parts)


def _open_basemap(uri: str | None) -> tuple[Any, str]:
    if not uri:
        return None, "no basemap: the run log names none and none was given"
    from tilecast.io.basemap import open_basemap

    try:
        return open_basemap(uri, block_cache_bytes=64 << 20), ""
    except (TilecastError, OSError) as exc:
        return None, f"the basemap {uri} cannot be opened ({exc})"


def make_report(
    output: str, *, basemap: str | None = None, out: str | None = None, n_chips: int = 6
) -> ReportSummary:
    """Write the QC report of the run in ``output``; return what it found.

    ``basemap`` overrides the run log's ``basemap`` field; ``out`` the report's path
    (default ``{output}/report/index.html``); ``n_chips`` is the number of chips per group.
    A missing basemap, mosaic or GeoPackage is reported in the page, not raised.
    """
    if isinstance(n_chips, bool) or not isinstance(n_chips, int) or n_chips < 0:
        raise InputError(f"n_chips must be an integer >= 0, {n_chips!r} is given")
    _matplotlib()
    output = str(output).rstrip("/")
    target = out or storage.join(output, "report", "index.html")
    checks: list[Check] = []

    logs = files.read_run_logs(output)
    totals = combine_run_logs(logs)
    polygons = _load_polygons(output, checks)
    mosaics = files.find_mosaics(output)
    names = set(mosaics)
    region_values = polygons.values("region")
    names.update(str(v) for v in region_values if v is not None and v == v)
    if totals is not None:
        names.update(totals.regions)
    regions = []
    for name in sorted(names):
        kinds = mosaics.get(name, {})
        region = _Region(name, kinds, tuple(k for k in files.MOSAIC_KINDS if k not in kinds))
        mask = np.array([str(v) == name for v in region_values], dtype=bool)
        region.n_polygons = int(mask.sum())
        region.area_m2 = float(np.nansum(polygons.column("area_m2")[mask])) if mask.any() else 0.0
        regions.append(region)

    threshold = None
    if totals is not None and isinstance(totals.first.get("threshold"), int | float):
        threshold = float(totals.first["threshold"])
    basemap_uri = basemap or (totals.first.get("basemap") if totals else None)
    bm, basemap_note = _open_basemap(basemap_uri)
    if bm is None:
        checks.append(Check("warn", basemap_note))
    ctx = _Context(polygons, threshold, bm, basemap_note, checks)
    try:
        for region in regions:
            log.info("report: region %s", region.name)
            _region_section(ctx, region)
        chips_html, n_chip_images = _chips_section(ctx, n_chips)
    finally:
        if bm is not None:
            bm.close()
    hist_html, n_hist_images = _histograms_section(polygons, threshold)
    verdict = _assess(totals, logs, polygons, regions, checks)

    n_poly = len(polygons)
    total_area = float(np.nansum(polygons.column("area_m2"))) / 1e6 if n_poly else 0.0
    first = totals.first if totals else {}
    title = (
        f"RTS QC · {_fmt_value(first.get('basemap_version'))} · "
        f"{_fmt_value(first.get('model_version'))}"
    )
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">Output <code>{escape(output)}</code> · report generated {generated}</p>',
    ]
    if polygons.frame is not None and n_poly == 0:
        body.append('<p class="empty">No RTS polygons were detected in this run.</p>')
    body += [
        '<h2 id="verdict">Verdict</h2>',
        tpl.check_list((c.level, c.text) for c in verdict),
        _cards(totals, polygons, regions),
        '<h2 id="regions">Regions</h2>',
        _regions_table(regions),
        '<h2 id="chips">Detections</h2>',
        chips_html
        or (
            '<p class="empty">No polygons: nothing to show.</p>'
            if n_poly == 0
            else '<p class="note">No chips requested.</p>'
        ),
        '<h2 id="distributions">Distributions</h2>',
        hist_html or '<p class="empty">No polygons: no distributions.</p>',
        '<h2 id="maps">Overview maps</h2>',
        "".join(r.html for r in regions) or '<p class="note">No regions to map.</p>',
        '<h2 id="runlog">Run log</h2>',
        _log_tables(logs, totals),
    ]
    html = tpl.page(title, "\n".join(body))
    files.write_report(target, html)
    missing = tuple(files.mosaic_name(r.name, k) for r in regions for k in r.missing)
    if polygons.frame is None:
        missing += (files.PREDICTIONS_PATH,)
    return ReportSummary(
        path=target,
        n_polygons=n_poly,
        n_regions=len(regions),
        total_area_km2=total_area,
        n_images=sum(r.n_images for r in regions) + n_chip_images + n_hist_images,
        missing_files=missing,
        checks=tuple(verdict),
    )


def build_report(
    output: str, *, basemap: str | None = None, out: str | None = None, n_chips: int = 6
) -> str:
    """Write the QC report (see :func:`make_report`) and return its path."""
    return make_report(output, basemap=basemap, out=out, n_chips=n_chips).path
