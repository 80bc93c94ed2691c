"""``tilecast rts launch``: the thaw-slump job as shards on a Ray cluster, then the products."""

from __future__ import annotations

import json

import click

from tilecast.cli.options import EXIT_INCOMPLETE, reports_errors


@click.command("launch")
@click.option("--config", "config_uri", required=True, help="Job config (YAML).")
@click.option("--tile-list", "tile_list_uri", required=True, help="CSV tile list.")
@click.option("--shards", type=click.IntRange(min=1), required=True, help="Ray tasks (chunks).")
@click.option(
    "--address",
    default=None,
    help="Ray cluster to join: 'auto' (the one running here) or ray://HOST:PORT. "
    "Default: start a local Ray for this run.",
)
@click.option("--gpus-per-shard", type=float, default=0.0, show_default=True)
@click.option("--cpus-per-shard", type=float, default=1.0, show_default=True)
@click.option(
    "--resources",
    default=None,
    help="Custom Ray resources per shard, as JSON: '{\"node_type_a\": 1}'.",
)
@click.option("--max-retries", type=click.IntRange(min=0), default=3, show_default=True)
@click.option(
    "--product-bands",
    type=click.IntRange(min=1),
    default=None,
    help="Bands of rows each region's products are cut into, one task each. "
    "Default: the cluster's CPUs.",
)
@reports_errors
def launch(
    config_uri: str,
    tile_list_uri: str,
    shards: int,
    address: str | None,
    gpus_per_shard: float,
    cpus_per_shard: float,
    resources: str | None,
    max_retries: int,
    product_bands: int | None,
) -> None:
    """Split the tile list into compact chunks, run each as a Ray task (the job with --shard,
    retried and resumed when its worker dies), then merge, vectorise and report as Ray tasks;
    _SUCCESS only when every shard is complete. Needs the ray extra."""
    from tilecast.apps.rts.config import load_config
    from tilecast.apps.rts.launch import LaunchSettings
    from tilecast.apps.rts.launch import launch as run_launch
    from tilecast.apps.rts.tilelist import parse_tile_list
    from tilecast.cli.progress import ProgressRenderer
    from tilecast.io import storage

    try:
        extra = json.loads(resources) if resources else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"expected a JSON object, got {resources!r} ({exc})") from exc
    if not isinstance(extra, dict) or not all(isinstance(v, int | float) for v in extra.values()):
        raise click.BadParameter(f"expected a JSON object of numbers, got {resources!r}")
    config = load_config(config_uri)
    tiles = parse_tile_list(storage.read_text(tile_list_uri), source=tile_list_uri)
    settings = LaunchSettings(
        shards=shards,
        address=address,
        gpus_per_shard=gpus_per_shard,
        cpus_per_shard=cpus_per_shard,
        resources=extra,
        max_retries=max_retries,
        product_bands=product_bands,
    )
    result = run_launch(config, tiles, settings, progress=ProgressRenderer())
    sizes = ", ".join(str(n) for n in result.tiles_per_shard)
    click.echo(f"shards     {len(result.shards)} ({sizes} tiles), {result.elapsed_s:.1f} s")
    click.echo(f"products   {len(result.products)} file(s) under {result.output}")
    if result.success:
        click.echo(f"success    {result.output}/_SUCCESS")
    else:
        click.echo(result.completeness.line() + ".", err=True)
        click.get_current_context().exit(EXIT_INCOMPLETE)
