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

The modules, by concern:

- :mod:`.checks`: :class:`Check`, :class:`ReportSummary` and the verdict (``assess``);
- :mod:`.totals`: the run logs combined (:class:`RunTotals`), each region's totals and
  ``ReportInputs``, everything the verdict and the page are built from (no file reads);
- :mod:`.polygons`: the GeoPackage as columns;
- :mod:`.layout`: pure arithmetic: chip picks (:func:`select_chips`), chip windows, overview
  sizes, scale-bar lengths (:func:`nice_length`);
- :mod:`.figures`: the matplotlib figures (:func:`true_north` for the north arrow);
- :mod:`.sections`: the figure sections, which read the mosaics and the basemap;
- :mod:`.html` and :mod:`.template`: the page; :mod:`.text`: how values read;
- :mod:`.build`: :func:`make_report`, which puts them together.
"""

from tilecast.apps.rts.report.build import build_report, make_report
from tilecast.apps.rts.report.checks import Check, ReportSummary
from tilecast.apps.rts.report.figures import PROB_DISPLAY_MIN, to_display_rgb, true_north
from tilecast.apps.rts.report.layout import (
    CHIP_GROUPS,
    CHIP_MAX_PX,
    CHIP_MIN_PX,
    OVERVIEW_LONG_SIDE,
    ChipPick,
    nice_length,
    overview_shape,
    select_chips,
)
from tilecast.apps.rts.report.polygons import EXPECTED_FIELDS
from tilecast.apps.rts.report.totals import (
    DEFAULT_REGION,
    IDENTITY_FIELDS,
    RunTotals,
    combine_run_logs,
)

__all__ = [
    "CHIP_GROUPS",
    "CHIP_MAX_PX",
    "CHIP_MIN_PX",
    "DEFAULT_REGION",
    "EXPECTED_FIELDS",
    "IDENTITY_FIELDS",
    "OVERVIEW_LONG_SIDE",
    "PROB_DISPLAY_MIN",
    "Check",
    "ChipPick",
    "ReportSummary",
    "RunTotals",
    "build_report",
    "combine_run_logs",
    "make_report",
    "nice_length",
    "overview_shape",
    "select_chips",
    "to_display_rgb",
    "true_north",
]
