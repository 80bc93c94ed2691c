"""``tilecast rts run | grid``: the thaw-slump job."""

from __future__ import annotations

import click

from tilecast.cli.options import reports_errors


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
    help="Name of this shard; its run log is logs/inference_log.<shard>.json.",
)
@reports_errors
def run(config_uri: str, tile_list_uri: str, shard: str | None) -> None:
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
