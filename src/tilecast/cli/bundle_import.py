"""``tilecast bundle import MODEL.onnx``: bundle a model made anywhere."""

from __future__ import annotations

import click

from tilecast.cli.options import reports_errors


@click.command("import")
@click.argument("model", metavar="MODEL.onnx")
@click.option("--draft", required=True, help="Contract draft (YAML/JSON): input, steps, labels.")
@click.option("--stats", "stats_file", required=True, help="normalization_stats.json.")
@click.option(
    "--golden",
    "golden_dir",
    help="Directory of golden pairs (*.npz: input, output) made by the training side's own "
    "predict; the serving path must reproduce them. Default: the bundle makes its own.",
)
@click.option("--out", required=True, help="Directory to write the bundle to.")
@click.option(
    "--layout",
    type=click.Choice(["auto", "NCHW", "NHWC"]),
    default="auto",
    show_default=True,
    help="The graph's input layout (NHWC: channels last, as Keras makes them); auto reads it "
    "off the graph's input shape.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@reports_errors
def import_onnx(
    model: str,
    draft: str,
    stats_file: str,
    golden_dir: str | None,
    out: str,
    layout: str,
    overwrite: bool,
) -> None:
    """Wrap an ONNX graph (run with onnxruntime) in a verified bundle.

    The draft declares how pixels become the graph's input (value scaling, statistics,
    alignment_multiple); steps marked `where: model` are ones the graph itself does. Needs
    the onnx extra: pip install 'tilecast[onnx]'.
    """
    from tilecast.bundle.importer import import_onnx as run_import

    result = run_import(
        model,
        draft=draft,
        stats=stats_file,
        out=out,
        golden=golden_dir,
        layout=layout,  # type: ignore[arg-type]
        overwrite=overwrite,
    )
    c = result.contract
    click.echo(f"imported {out}: {c.name} {c.version} ({c.model.file}, {c.model.params['layout']})")
    click.echo(f"digest   {result.digest}")
    click.echo(
        f"golden   {len(c.golden.files)} pair(s) from {c.golden.source}, "
        f"max error {result.golden_max_error:.2g}"
    )
