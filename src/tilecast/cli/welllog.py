"""``tilecast welllog run | serve``: the well-log digitiser as a batch job and as a service."""

from __future__ import annotations

import click

from tilecast.cli.options import input_drift_option, reports_errors


@click.group()
def welllog() -> None:
    """The well-log digitiser: curves off scanned logs, written back as LAS 2.0 + JSON."""


@welllog.command("run")
@click.option(
    "--scans",
    required=True,
    help="A CSV manifest (scan_uri,uwi,scan_id,top_depth,bottom_depth,depth_unit,curve,unit,"
    "left,right,scale), or a prefix holding manifest.csv or images with <name>.json records.",
)
@click.option("--bundle", "bundle_uri", required=True, help="The digitiser's model bundle.")
@click.option("--out", required=True, help="Output prefix (a folder, s3://... or gs://...).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@input_drift_option
@reports_errors
def run(scans: str, bundle_uri: str, out: str, batch_size: int, input_drift: str) -> None:
    """Digitise every scan; scans already committed under --out are skipped (resumable).

    Exit status 1 when any scan failed (rejected scans are listed but do not fail the run).
    """
    from tilecast.apps.welllog.job import WelllogJob
    from tilecast.apps.welllog.manifest import read_scans
    from tilecast.bundle import load_bundle
    from tilecast.cli.progress import ProgressRenderer

    scan_list = read_scans(scans)
    bundle = load_bundle(bundle_uri)
    job = WelllogJob(
        bundle,
        out,
        batch_size=batch_size,
        progress=ProgressRenderer(unit="scans"),
        input_drift=input_drift,
    )
    summary = job.run(scan_list)
    counts = {s: summary.count(s) for s in ("accepted", "skipped", "rejected", "failed")}
    rate = counts["accepted"] / summary.elapsed_s if summary.elapsed_s else 0.0
    click.echo(
        f"done       {counts['accepted']} accepted, {counts['skipped']} skipped (already done), "
        f"{counts['rejected']} rejected, {counts['failed']} failed"
    )
    click.echo(f"time       {summary.elapsed_s:.1f} s ({rate:.2f} scans/s)")
    click.echo(f"output     {summary.out}/well=<uwi>/scan=<scan_id>/")
    if summary.input_drift is not None:
        click.echo(f"input      {summary.input_drift.summary()}")
    for outcome in summary.outcomes:
        if outcome.status in ("rejected", "failed"):
            click.echo(f"{outcome.status:<10} {outcome.scan}: {outcome.reason}")
    if not summary.ok:
        raise click.exceptions.Exit(1)


@welllog.command("serve")
@click.option("--bundle", "bundle_uri", required=True, help="The digitiser's model bundle.")
@click.option("--out", required=True, help="Output prefix (a folder, s3://... or gs://...).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@reports_errors
def serve(bundle_uri: str, out: str, host: str, port: int) -> None:
    """Serve POST /scans, GET /health and GET /contract (needs the `serve` extra).

    The same service as `tilecast serve BUNDLE --out OUT` (which this is an alias of).
    """
    from tilecast.cli.serve import run_service
    from tilecast.serve.settings import ServeSettings

    run_service(bundle_uri, out=out, host=host, port=port, settings=ServeSettings())
