"""``tilecast predict BUNDLE INPUT OUTPUT``: one image, untiled, through the bundle's contract."""

from __future__ import annotations

import click

from tilecast.cli.options import channel_order_option, input_drift_option, reports_errors


@click.command()
@click.argument("bundle_uri", metavar="BUNDLE")
@click.argument("source", metavar="INPUT")
@click.argument("destination", metavar="OUTPUT")
@channel_order_option
@input_drift_option
@reports_errors
def predict(
    bundle_uri: str, source: str, destination: str, channel_order: str | None, input_drift: str
) -> None:
    """Predict INPUT (GeoTIFF, PNG, JPEG) with BUNDLE; write probabilities to OUTPUT (GeoTIFF)."""
    from tilecast.bundle import load_bundle
    from tilecast.io.bands import MASK_DESCRIPTIONS
    from tilecast.predict.reference import predict_image_file

    bundle = load_bundle(bundle_uri)
    result = predict_image_file(
        bundle, source, destination, channel_order=channel_order, input_drift=input_drift
    )
    c = result.confidence
    click.echo(
        f"model      {bundle.contract.name} {bundle.contract.version} ({bundle.digest[:12]})"
    )
    bands, height, width = result.input_shape
    click.echo(f"input      {source} {width} x {height} px, {bands} band(s) {result.channel_order}")
    click.echo(f"output     {destination} {width} x {height} px float32, NoData -1")
    counts = ", ".join(f"{k}: {v}" for k, v in result.sentinel_counts.items()) or "none"
    click.echo(
        f"invalid    {c.n_invalid} pixels ({counts}); validity from {MASK_DESCRIPTIONS[result.mask]}"
    )
    click.echo(
        f"confidence min {c.min:.3f}  mean {c.mean:.3f}  max {c.max:.3f}  "
        f"{100 * c.fraction_above_threshold:.2f}% >= threshold {c.threshold:.2f}"
    )
    click.echo(f"input drift {result.input_drift.summary()}")
