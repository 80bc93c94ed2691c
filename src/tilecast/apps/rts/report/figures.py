"""The QC report's figures: matplotlib on the Agg canvas (never pyplot), returned as PNG bytes.

- the overview of a region (:func:`overview_png`): the basemap, the probability where it is at
  least :data:`PROB_DISPLAY_MIN`, polygon outlines (and a ring around polygons too small to
  see), the mosaic's NoData hatched, a scale bar in map kilometres and a north arrow pointing
  to true north (:func:`true_north`; in polar stereographic it is not "up");
- a chip around one polygon (:func:`chip_png`);
- histograms of polygon area and of max_prob (:func:`area_hist_png`, :func:`prob_hist_png`).

Nothing here reads a file; no display and no global state are touched.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tilecast.apps.rts.report.layout import nice_length

#: Probabilities below this are not drawn on the overview maps.
PROB_DISPLAY_MIN = 0.2

_OUTLINE = "#00e5ff"
_CHIP_OUTLINE = "#ffe000"
_PROB_CMAP = "plasma"


def require_matplotlib() -> Any:
    """The matplotlib module; a sentence naming the ``report`` extra when it is missing."""
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the QC report needs matplotlib: install tilecast with the 'report' extra"
        ) from exc
    return matplotlib


def _figure(width_in: float, height_in: float, *, layout: str | None = None) -> Any:
    require_matplotlib()
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


def overview_png(
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
    """A region's map: ``rgb`` (or nothing) under ``prob``, ``geoms`` outlined, in ``bounds``.

    ``binary_only``: ``prob`` is the binary mosaic (a legend entry instead of a colour bar).
    """
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
    return _png(fig, dpi=110)


def chip_png(
    rgb: np.ndarray,
    bounds: tuple[float, float, float, float],
    target: Any,
    others: Sequence[Any],
) -> bytes:
    """A chip: ``rgb`` in ``bounds``, ``target`` outlined in yellow, ``others`` dashed."""
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


def area_hist_png(area: np.ndarray) -> bytes:
    """Polygon areas (the positive, finite ones) on a log x axis, with their median."""
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


def prob_hist_png(max_prob: np.ndarray, mean_prob: np.ndarray, threshold: float | None) -> bytes:
    """max_prob per polygon (bars), mean_prob (line) and the threshold (dashed)."""
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
