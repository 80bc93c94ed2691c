"""``tilecast rts run | grid | split | products | status``: the thaw-slump job."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import click

from tilecast.cli.options import EXIT_INCOMPLETE, reports_errors

if TYPE_CHECKING:
    from tilecast.apps.rts.config import ProductsSection, RtsConfig


@click.group()
def rts() -> None:
    """The retrogressive-thaw-slump inference job."""


@click.command("run")
@click.option("--config", "config_uri", required=True, help="Job config (YAML).")
@click.option(
    "--tile-list", "tile_list_uri", required=True, help="CSV: tile_id,minx,miny,maxx,maxy[,region]."
)
@click.option(
    "--shard",
    default=None,
    help="Name of this shard; its run log is logs/inference_log.<shard>.json. Shards make no "
    "products: run `tilecast rts products` once every shard has finished.",
)
@click.option("--no-products", is_flag=True, help="Only the tiles: no mosaics, polygons or report.")
@reports_errors
def run(config_uri: str, tile_list_uri: str, shard: str | None, no_products: bool) -> None:
    """Predict every tile of the tile list; resumes where an earlier run with the same arguments stopped."""
    from tilecast.apps.rts.config import load_config
    from tilecast.apps.rts.job import RtsJob
    from tilecast.apps.rts.tilelist import parse_tile_list
    from tilecast.cli.progress import ProgressRenderer
    from tilecast.io import storage

    config = load_config(config_uri)
    tiles = parse_tile_list(storage.read_text(tile_list_uri), source=tile_list_uri)
    result = RtsJob(config, tiles, shard=shard, progress=ProgressRenderer()).run()
    stats = result.read_stats
    click.echo(
        f"done       {result.n_committed} tiles written, {result.n_skipped} skipped, "
        f"{result.n_already_done} already done before this run ({result.n_planned} planned)"
    )
    rate = result.n_committed / result.elapsed_s if result.elapsed_s else 0.0
    click.echo(
        f"time       {result.elapsed_s:.1f} s ({rate:.2f} tiles/s, {result.model_passes} model passes)"
    )
    click.echo(f"reads      {stats.blocks_decoded} blocks decoded, {stats.cache_hits} cache hits")
    click.echo(f"tiles      {result.output}/tiles/")
    click.echo(f"run log    {result.log_uri}")
    if result.input_drift is not None:
        click.echo(f"input      {result.input_drift.summary()}")
    if shard is None and not no_products:
        _products(result.output, config.products, basemap=config.input.basemap)
    elif shard is None:
        _mark_success(result.output)
    if not result.complete:
        n = sum(result.not_done.values())
        reasons = ", ".join(f"{reason}: {k}" for reason, k in result.not_done.items())
        click.echo(
            f"incomplete {n} of {result.n_planned} tiles not done ({reasons}); no _SUCCESS. "
            "Rerun the same command to retry them.",
            err=True,
        )
        click.get_current_context().exit(EXIT_INCOMPLETE)


def _exit_if_incomplete(output: str) -> None:
    """Exit with :data:`EXIT_INCOMPLETE` and say what is missing when a run log is not complete."""
    from tilecast.run.runlogs import read_completeness

    completeness = read_completeness(output)
    if not completeness.complete:
        click.echo(completeness.line() + ".", err=True)
        click.get_current_context().exit(EXIT_INCOMPLETE)


def _mark_success(output: str) -> None:
    from tilecast.run.success import success_uri, write_success

    if write_success(output) is not None:  # last: after the tiles, logs and products
        click.echo(f"success    {success_uri(output)}")


def _products(
    output: str, settings: ProductsSection, *, basemap: str | None, threshold: float | None = None
) -> None:
    from tilecast.apps.rts.products import make_products
    from tilecast.run.success import clear_success

    clear_success(output)  # the products are about to change
    made = make_products(output, settings, threshold=threshold, basemap=basemap)
    for region in made.regions:
        click.echo(f"mosaics    {output}/merged/region_{region}_{{prob,binary,scale}}.tif")
    if made.vectors:
        click.echo(
            f"polygons   {made.vectors} ({made.n_polygons} polygons, {made.total_area_km2:.4f} km2)"
        )
    for line in made.report_lines:
        click.echo(line)
    _mark_success(output)  # only when every run log is complete


@click.command("products")
@click.option("--output", required=True, help="The job's output path (holds tiles/ and logs/).")
@click.option(
    "--config",
    "config_uri",
    default=None,
    help="Take the basemap (and products settings the run logs did not record) from this job "
    "config; products settings it sets must agree with the run logs.",
)
@click.option("--threshold", type=float, default=None, help="Default: the run log's threshold.")
@click.option("--strategy", type=click.Choice(["auto", "memory", "streaming"]), default=None)
@click.option(
    "--min-area-m2", type=float, default=None, help="Default: what the run logs recorded."
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(["merge", "vectorize", "report"]),
    help="Steps to leave out.",
)
@reports_errors
def products(
    output: str,
    config_uri: str | None,
    threshold: float | None,
    strategy: str | None,
    min_area_m2: float | None,
    skip: tuple[str, ...],
) -> None:
    """Merge tiles into region COGs, vectorise them, update the run log, write the QC report.

    Settings come from the run logs (what the job's config said under ``products:``); options
    override them, and a --config that disagrees with them is refused.
    """
    from tilecast.apps.rts.config import load_config

    config = load_config(config_uri) if config_uri else None
    explicit: dict[str, object] = {step: False for step in skip}
    if strategy:
        explicit["merge_strategy"] = strategy
    if min_area_m2 is not None:
        explicit["min_area_m2"] = min_area_m2
    settings = _recorded_settings(output, config, explicit)
    _products(
        output, settings, basemap=config.input.basemap if config else None, threshold=threshold
    )
    _exit_if_incomplete(output)


#: The option of ``rts products`` that sets each products setting (for error messages).
_PRODUCTS_OPTIONS = {
    "merge": "--skip merge (or run `tilecast rts merge`)",
    "vectorize": "--skip vectorize (or run `tilecast rts vectorize`)",
    "report": "--skip report (or run `tilecast rts report`)",
    "merge_strategy": "--strategy",
    "min_area_m2": "--min-area-m2",
}


def _recorded_settings(
    output: str, config: RtsConfig | None, explicit: dict[str, object]
) -> ProductsSection:
    """The products settings for ``output``: options, else the run logs' record, else the
    config's (see ``runlogs.settle_products``)."""
    from pydantic import ValidationError

    from tilecast.apps.rts.config import ProductsSection
    from tilecast.run.runlogs import RunLogError, read_recorded_products, settle_products

    recorded = read_recorded_products(output)
    from_config = (
        config.products.model_dump(mode="json", include=config.products.model_fields_set)
        if config
        else None
    )
    settled = settle_products(
        recorded, config=from_config, explicit=explicit, options=_PRODUCTS_OPTIONS
    )
    try:
        return ProductsSection.model_validate(settled)
    except ValidationError as exc:
        raise RunLogError(
            f"the products settings from {', '.join(recorded.uris)} are not valid: {exc}"
        ) from exc


@click.command("grid")
@click.option(
    "--basemap",
    required=True,
    help="Raster, VRT or folder of COG quads whose grid the tiles snap to.",
)
@click.option(
    "--bbox",
    nargs=4,
    type=float,
    default=None,
    metavar="MINX MINY MAXX MAXY",
    help="Default: the basemap extent.",
)
@click.option("--tile-size", default=512, show_default=True)
@click.option("--stride", default=256, show_default=True)
@click.option("--region", default=None, help="Value of the region column for every tile.")
@click.option("--out", required=True, help="Tile list CSV to write.")
@reports_errors
def grid(
    basemap: str,
    bbox: tuple[float, float, float, float] | None,
    tile_size: int,
    stride: int,
    region: str | None,
    out: str,
) -> None:
    """Make a tile list: tiles of --tile-size px every --stride px on the basemap pixel grid."""
    from tilecast.apps.rts.tilelist import format_tile_list
    from tilecast.grid import make_tile_grid
    from tilecast.io import storage
    from tilecast.io.basemap import open_basemap

    with open_basemap(basemap) as bm:
        tiles = make_tile_grid(
            bm.grid, bbox=bbox, tile_size=tile_size, stride=stride, region=region
        )
    storage.write_text(out, format_tile_list(tiles))
    click.echo(f"wrote {len(tiles)} tiles to {out}")


@click.command("split")
@click.option("--tile-list", "tile_list_uri", required=True, help="The tile list CSV to split.")
@click.option(
    "--chunks", type=int, required=True, help="How many chunks (1 to the number of tiles)."
)
@click.option("--out", required=True, help="Directory for chunk_0000.csv ... and summary.json.")
@reports_errors
def split(tile_list_uri: str, chunks: int, out: str) -> None:
    """Cut a tile list into balanced chunks, each a compact block of the lattice (one job each)."""
    from tilecast.apps.rts.split import split_tiles, summarise_chunks
    from tilecast.apps.rts.tilelist import format_tile_list, parse_tile_list
    from tilecast.io import storage

    tiles = parse_tile_list(storage.read_text(tile_list_uri), source=tile_list_uri)
    parts = split_tiles(tiles, chunks)
    summary = summarise_chunks(parts)
    names = [c.name for c in summary.chunks]
    stale = sorted(set(_chunk_files(out)) - set(names))
    if stale:
        raise click.ClickException(
            f"{out} holds chunk files of another split ({', '.join(stale[:4])}"
            f"{', ...' if len(stale) > 4 else ''}); expected none beyond the {chunks} this split "
            "writes: remove them or choose another --out"
        )
    for name, part in zip(names, parts, strict=True):
        storage.write_text(storage.join(out, name), format_tile_list(part))
    storage.write_text(
        storage.join(out, "summary.json"), json.dumps(summary.to_json(), indent=1) + "\n"
    )  # last: a whole summary means every chunk is written
    click.echo(f"{'chunk':<16}{'tiles':>7}  {'bbox (minx miny maxx maxy)':<52}regions")
    for c in summary.chunks:
        bbox = " ".join(f"{v:.1f}" for v in c.bounds)
        regions = ", ".join(f"{r or '-'}: {n}" for r, n in c.regions)
        click.echo(f"{c.name:<16}{c.n_tiles:>7}  {bbox:<52}{regions}")
    sizes = [c.n_tiles for c in summary.chunks]
    click.echo(
        f"{summary.n_tiles} tiles in {len(sizes)} chunks of {min(sizes)}-{max(sizes)}; "
        f"{summary.border_pairs} of {summary.neighbour_pairs} neighbouring tile pairs lie in "
        "two chunks"
    )
    click.echo(f"wrote {storage.join(out, 'summary.json')}")


def _chunk_files(out: str) -> list[str]:
    from tilecast.errors import StorageError
    from tilecast.io import storage

    try:
        return [n for n in storage.list_files(out) if re.fullmatch(r"chunk_\d+\.csv", n)]
    except StorageError:  # no such directory yet
        return []


@click.command("status")
@click.option("--output", required=True, help="The job's output path (holds tiles/ and logs/).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@reports_errors
def status(output: str, as_json: bool) -> None:
    """Where an output stands: per run log tiles done, skipped, missing, speed, ETA, leases."""
    from tilecast.run.status import read_status

    found = read_status(output)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=1))
        return
    click.echo(f"output     {output}: {found.state}")
    click.echo(
        f"{'log':<28}{'status':<12}{'listed':>8}{'done':>8}{'skipped':>9}{'missing':>9}"
        f"{'tiles/s':>9}{'eta':>9}"
    )
    for s in found.shards:
        speed = f"{s.tiles_per_s:.2f}" if s.tiles_per_s else "-"
        click.echo(
            f"{s.log.removeprefix('logs/'):<28}{s.state:<12}{s.n_listed:>8}{s.n_done:>8}"
            f"{s.n_skipped:>9}{s.n_missing:>9}{speed:>9}{_duration(s.eta_s):>9}"
        )
        for reason, n in s.skipped.items():
            click.echo(f"{'':<28}skipped {n}: {reason}")
        if s.detail:
            click.echo(f"{'':<28}{s.detail}")
    for lease in found.leases:
        click.echo(f"lease      {lease.describe()}")
    made = ", ".join(
        f"{name}: {'yes' if there else 'no'}" for name, there in found.products.items()
    )
    click.echo(f"products   {made}; _SUCCESS: {'yes' if found.success else 'no'}")
    if found.state == "complete" and not found.success:
        click.echo(f"next       tilecast rts products --output {output}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


rts.add_command(run)
rts.add_command(grid)
rts.add_command(products)
rts.add_command(status)
rts.add_command(split)


def _single_step(step: str, help_text: str) -> click.Command:
    others = [s for s in ("merge", "vectorize", "report") if s != step]

    @click.command(step, help=help_text)
    @click.option("--output", required=True, help="The job's output path.")
    @click.option(
        "--config",
        "config_uri",
        default=None,
        help="Take settings and basemap from this job config.",
    )
    @click.option("--threshold", type=float, default=None, help="Default: the run log's threshold.")
    @reports_errors
    def command(output: str, config_uri: str | None, threshold: float | None) -> None:
        from tilecast.apps.rts.config import load_config

        config = load_config(config_uri) if config_uri else None
        explicit: dict[str, object] = {**{o: False for o in others}, step: True}
        settings = _recorded_settings(output, config, explicit)
        _products(
            output, settings, basemap=config.input.basemap if config else None, threshold=threshold
        )
        _exit_if_incomplete(output)

    return command


rts.add_command(
    _single_step("merge", "Per-region max-merge of the tiles into COG mosaics (merged/).")
)
rts.add_command(
    _single_step(
        "vectorize",
        "Polygons with attributes from the region mosaics (vectors/rts_predictions.gpkg).",
    )
)
rts.add_command(_single_step("report", "The static HTML QC report (report/index.html)."))
