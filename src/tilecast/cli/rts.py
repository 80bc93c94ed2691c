"""``tilecast rts run | grid``: the thaw-slump job."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tilecast.cli.options import EXIT_INCOMPLETE, reports_errors

if TYPE_CHECKING:
    from tilecast.apps.rts.config import ProductsSection


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
    help="Take products settings and basemap from this job config.",
)
@click.option("--threshold", type=float, default=None, help="Default: the run log's threshold.")
@click.option("--strategy", type=click.Choice(["auto", "memory", "streaming"]), default=None)
@click.option("--min-area-m2", type=float, default=None)
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
    """Merge tiles into region COGs, vectorise them, update the run log, write the QC report."""
    from tilecast.apps.rts.config import ProductsSection, load_config

    config = load_config(config_uri) if config_uri else None
    settings = config.products if config else ProductsSection()
    changes: dict[str, object] = {step: False for step in skip}
    if strategy:
        changes["merge_strategy"] = strategy
    if min_area_m2 is not None:
        changes["min_area_m2"] = min_area_m2
    settings = settings.model_copy(update=changes)
    _products(
        output, settings, basemap=config.input.basemap if config else None, threshold=threshold
    )
    _exit_if_incomplete(output)


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


rts.add_command(run)
rts.add_command(grid)
rts.add_command(products)


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
        from tilecast.apps.rts.config import ProductsSection, load_config

        config = load_config(config_uri) if config_uri else None
        settings = (config.products if config else ProductsSection()).model_copy(
            update={**{o: False for o in others}, step: True}
        )
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
