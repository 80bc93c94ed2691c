"""The QC report's figure sections: they read the mosaics and the basemap (through
:mod:`tilecast.io.report_files`), draw (:mod:`.figures`) and return HTML.

- :func:`region_overview`: one region's overview map and its caption;
- :func:`chips_section`: basemap chips around the largest, the most and the least confident
  polygons (:func:`~.layout.select_chips`);
- :func:`histograms_section`: polygon area and max_prob.

What goes wrong while reading (an unreadable mosaic or basemap file) is appended to the
context's checks; nothing here raises for a missing file.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

from tilecast.apps.rts.report import template as tpl
from tilecast.apps.rts.report.checks import Check
from tilecast.apps.rts.report.figures import (
    PROB_DISPLAY_MIN,
    area_hist_png,
    chip_png,
    overview_png,
    prob_hist_png,
    to_display_rgb,
)
from tilecast.apps.rts.report.layout import (
    CHIP_GROUPS,
    CHIP_MAX_PX,
    GROUP_SHORT,
    chip_window,
    overview_shape,
    select_chips,
)
from tilecast.apps.rts.report.polygons import Polygons
from tilecast.apps.rts.report.text import fmt_area, fmt_num, fmt_value
from tilecast.apps.rts.report.totals import RegionTotals
from tilecast.errors import StorageError
from tilecast.grid.pixelgrid import window_bounds
from tilecast.io import report_files as files


@dataclass
class SectionContext:
    """What every figure section reads from, and the checks it adds to."""

    polygons: Polygons
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


@dataclass(frozen=True)
class RegionOverview:
    """A region's part of the overview maps: its HTML, its images, the share with predictions."""

    html: str
    n_images: int = 0
    data_fraction: float | None = None


def region_overview(ctx: SectionContext, region: RegionTotals) -> RegionOverview:
    """The region's heading, what it misses and its overview map (from the probability mosaic,
    or the binary one when that is missing), with the basemap where it can be shown."""
    kinds = region.mosaics
    source = kinds.get("prob") or kinds.get("binary")
    header = f'<h3 id="region-{escape(region.name)}">Region {escape(region.name)}</h3>'
    if region.missing:
        names = ", ".join(files.mosaic_name(region.name, k) for k in region.missing)
        header += f'<p class="missing">Missing: <code>{escape(names)}</code></p>'
    if source is None:
        return RegionOverview(
            header + '<p class="note">No probability or binary mosaic: no overview.</p>'
        )
    try:
        info = files.raster_info(source)
        shape = overview_shape(info.height, info.width)
        prob = files.read_reduced(source, shape)
    except StorageError as exc:
        ctx.checks.append(Check("error", f"region {region.name}: {exc}"))
        return RegionOverview(
            header + f'<p class="missing">Cannot read the mosaic: {escape(str(exc))}</p>'
        )
    crs = info.crs or "EPSG:3413"
    data_fraction = float(np.isfinite(prob).mean())
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
    png = overview_png(
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
    html = header + tpl.figure(png, caption, alt=f"overview of region {region.name}")
    return RegionOverview(html, n_images=1, data_fraction=data_fraction)


def chips_section(ctx: SectionContext, n_chips: int) -> tuple[str, int]:
    """The chips' HTML and how many images it holds ("" when there is nothing to show)."""
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
                (p.ranks[group], fmt_value(ids[p.row])) for p in earlier if group in p.ranks
            )
            listed = ", ".join(rts_id for _, rts_id in top)
            parts.append(f'<p class="note">Already shown above: rts_id {escape(listed)}.</p>')
            continue
        figs = []
        for pick in chosen:
            geom = frame.geometry.iloc[pick.row]
            if geom is None or geom.is_empty:
                continue
            window = chip_window(grid, geom.bounds)
            bounds = window_bounds(grid, window)
            out_shape = overview_shape(window.height, window.width, CHIP_MAX_PX)
            raw, valid = files.read_basemap_view(
                bm, bounds, out_shape, bands=bands, on_error=ctx.basemap_unreadable
            )
            rgb = to_display_rgb(raw, valid, bm.dtype.name)
            near = frame.cx[bounds[0] : bounds[2], bounds[1] : bounds[3]]
            others = [g for i, g in zip(near.index, near.geometry, strict=True) if i != pick.row]
            png = chip_png(rgb, bounds, geom, others)
            rank_text = ", ".join(f"{GROUP_SHORT[g]} #{r}" for g, r in pick.ranks.items())
            caption = (
                f"<b>rts_id {escape(fmt_value(ids[pick.row]))}</b> · area "
                f"{escape(fmt_area(area[pick.row]))}<br>max_prob "
                f"{fmt_num(max_prob[pick.row])} · mean_prob {fmt_num(mean_prob[pick.row])}"
                f"<br>detection_scale {escape(fmt_value(scales[pick.row]))} · region "
                f'{escape(fmt_value(regions[pick.row]))}<br><span class="note">'
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


def histograms_section(polygons: Polygons, threshold: float | None) -> tuple[str, int]:
    """The histograms' HTML and how many images it holds ("" when there is no polygon)."""
    if len(polygons) == 0:
        return "", 0
    area = polygons.column("area_m2")
    max_prob = polygons.column("max_prob")
    figs = []
    if np.isfinite(area).any() and (area[np.isfinite(area)] > 0).any():
        figs.append(
            tpl.figure(
                area_hist_png(area),
                "Polygon area (area_m2, geodesic), log-scaled x axis.",
                alt="histogram of polygon area",
            )
        )
    if np.isfinite(max_prob).any():
        figs.append(
            tpl.figure(
                prob_hist_png(max_prob, polygons.column("mean_prob"), threshold),
                "max_prob per polygon (bars), mean_prob (line) and the threshold (dashed).",
                alt="histogram of max_prob",
            )
        )
    return '<div class="hists">' + "".join(figs) + "</div>", len(figs)
