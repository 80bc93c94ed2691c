"""``tilecast classify BUNDLE INPUTS...``: label images with a classification bundle."""

from __future__ import annotations

import click

from tilecast.cli.options import (
    EXIT_ERROR,
    channel_order_option,
    input_drift_option,
    reports_errors,
)


@click.command()
@click.argument("bundle_uri", metavar="BUNDLE")
@click.argument("inputs", metavar="INPUTS...", nargs=-1, required=True)
@click.option(
    "--tta",
    type=click.Choice(["none", "minimal", "standard"]),
    default="none",
    show_default=True,
    help="Test-time views averaged before the answer: none, minimal (+ hflip), standard "
    "(+ hflip, vflip, rot180).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Images per batch.",
)
@click.option(
    "--out",
    default=None,
    help="Results file, .csv or .jsonl (local, s3:// or gs://). Default: JSON Lines on stdout.",
)
@channel_order_option
@input_drift_option
@reports_errors
def classify(
    bundle_uri: str,
    inputs: tuple[str, ...],
    tta: str,
    batch_size: int,
    out: str | None,
    channel_order: str | None,
    input_drift: str,
) -> None:
    """Classify INPUTS (PNG, JPEG, TIFF, GeoTIFF files, folders, globs or .txt lists of
    URIs; local, s3:// or gs://) with BUNDLE: one row per input with the label, confidence,
    top-k, `uncertain`, the input size and the checks that ran. An image that cannot be read
    or does not fit the contract is a named rejection; the others go on."""
    from tilecast.apps.classify import classify as classify_images
    from tilecast.apps.classify import expand_inputs, write_rows
    from tilecast.apps.classify.results import encode_rows, results_format
    from tilecast.bundle import load_bundle
    from tilecast.cli.progress import ProgressRenderer

    if out is not None:
        results_format(out)  # a wrong suffix fails before any work
    bundle = load_bundle(bundle_uri)
    uris = expand_inputs(inputs)
    run = classify_images(
        bundle,
        uris,
        tta=tta,
        batch_size=batch_size,
        channel_order=channel_order,
        progress=ProgressRenderer(unit="images"),
        input_drift=input_drift,
    )
    if out is None:
        click.echo(encode_rows(run.rows, fmt="jsonl"), nl=False)
    else:
        write_rows(out, run.rows)
    s = run.summary
    for text in (
        f"model      {s.bundle}",
        f"images     {s.total}: {s.classified} classified ({s.uncertain} uncertain), "
        f"{s.rejected} rejected; TTA {s.tta}, batch {s.batch_size}; "
        f"{s.elapsed_s:.1f} s, {s.rate:.1f} images/s",
        "labels     " + (", ".join(f"{k} {v}" for k, v in s.labels.items()) or "none"),
        *(f"rejected   {uri}: {reason}" for uri, reason in s.rejections.items()),
        *([f"input      {s.input_drift.summary()}"] if s.input_drift else []),
        *([f"results    {out}"] if out else []),
    ):
        click.echo(text, err=True)
    if s.total and s.rejected == s.total:
        click.get_current_context().exit(EXIT_ERROR)
