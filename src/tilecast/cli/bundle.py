"""``tilecast bundle create | verify | inspect``."""

from __future__ import annotations

import json

import click

from tilecast.cli.options import reports_errors


@click.group()
def bundle() -> None:
    """Create, verify and inspect model bundles."""


@bundle.command()
@click.argument("source", required=False)
@click.option("--out", required=True, help="Directory to write the bundle to.")
@click.option(
    "--model-factory",
    help="Instead of SOURCE: 'package.module:callable' returning the nn.Module to bundle "
    "(with --draft and --stats, optionally --weights).",
)
@click.option("--draft", help="Contract draft (YAML/JSON) for --model-factory.")
@click.option("--stats", "stats_file", help="normalization_stats.json for --model-factory.")
@click.option("--weights", help="state_dict or checkpoint to load into the factory's model.")
@click.option(
    "--format",
    "model_format",
    type=click.Choice(["export", "state_dict", "onnx"]),
    default="export",
    show_default=True,
    help="export: a torch.export program (model.pt2); state_dict: weights + architecture name; "
    "onnx: an ONNX graph (model.onnx, opset 18) run with onnxruntime (the onnx extra).",
)
@click.option(
    "--bake",
    multiple=True,
    type=click.Choice(["scale_values", "normalize"]),
    help="Preprocessing steps to run inside the model program (repeatable). "
    "Default: scale_values and normalize.",
)
@click.option("--host-only", is_flag=True, help="Bake nothing: every step runs on the host.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@reports_errors
def create(
    source: str | None,
    out: str,
    model_factory: str | None,
    draft: str | None,
    stats_file: str | None,
    weights: str | None,
    model_format: str,
    bake: tuple[str, ...],
    host_only: bool,
    overwrite: bool,
) -> None:
    """Make a verified bundle from a training directory or a Python model.

    SOURCE holds best_model.pth (state_dict or checkpoint dict), normalization_stats.json and
    config.yaml, and optionally golden/*.npz pairs made by the training code, which the
    serving path must reproduce before the bundle is written. config.yaml names a tilecast
    architecture, or a segmentation_models_pytorch model in smp's terms (architecture: Unet or
    UnetPlusPlus, encoder_name: resnet18/34/50, ...), built by smp when it is installed, else
    by tilecast's own implementation of it. Or give --model-factory, --draft and --stats to
    bundle a model defined in Python.
    """
    from tilecast.bundle import create_from_training_dir
    from tilecast.bundle.create import DEFAULT_BAKED, create_from_python

    if (source is None) == (model_factory is None):
        raise click.UsageError("give either SOURCE (a training directory) or --model-factory")
    if model_factory is not None:
        if not (draft and stats_file):
            raise click.UsageError("--model-factory needs --draft and --stats")
        result = create_from_python(
            model_factory,
            draft=draft,
            stats=stats_file,
            out=out,
            weights=weights,
            model_format=model_format,  # type: ignore[arg-type]
            overwrite=overwrite,
        )
    else:
        baked = () if host_only else (bake or DEFAULT_BAKED)
        result = create_from_training_dir(
            source,  # type: ignore[arg-type]
            out,
            model_format=model_format,  # type: ignore[arg-type]
            baked=baked,
            overwrite=overwrite,
        )
    click.echo(f"created {out}: {result.contract.name} {result.contract.version}")
    click.echo(f"digest  {result.digest}")
    click.echo(
        f"golden  {len(result.contract.golden.files)} pair(s) from {result.contract.golden.source}, "
        f"max error {result.golden_max_error:.2g}"
    )


@bundle.command()
@click.argument("bundle_uri", metavar="BUNDLE")
@reports_errors
def verify(bundle_uri: str) -> None:
    """Run every load-time check on BUNDLE; exit 1 with the reason if any fails."""
    from tilecast.bundle import load_bundle

    b = load_bundle(bundle_uri)
    click.echo(
        f"OK {bundle_uri}: {b.contract.name} {b.contract.version}, digest {b.digest}, "
        f"{len(b.manifest.files)} files, golden max error {b.golden_max_error:.2g} "
        f"(atol {b.contract.golden.atol})"
    )


@bundle.command()
@click.argument("bundle_uri", metavar="BUNDLE")
@click.option("--json", "as_json", is_flag=True, help="Print the contract and manifest as JSON.")
@reports_errors
def inspect(bundle_uri: str, as_json: bool) -> None:
    """Show what BUNDLE declares: input, steps (host or baked), postprocessing, files."""
    from tilecast.bundle import load_bundle

    b = load_bundle(bundle_uri)
    c = b.contract
    if as_json:
        payload = {
            "contract": c.model_dump(mode="json"),
            "manifest": b.manifest.model_dump(mode="json"),
            "normalization_stats_md5": b.stats_md5,
            "normalization_stats": b.stats.model_dump(mode="json"),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    i = c.input
    click.echo(f"bundle     {bundle_uri}")
    click.echo(f"model      {c.name} {c.version} ({c.task}), {c.model.format} {c.model.file}")
    if c.model.architecture:
        click.echo(f"arch       {c.model.architecture} {json.dumps(c.model.params)}")
    click.echo(f"digest     {b.digest}")
    click.echo(
        f"input      {i.channels} x {i.dtype} {i.channel_order}, {i.value_scaling} over "
        f"{list(i.input_range)}, multiples of {c.alignment.multiple} ({c.alignment.pad_mode} pad)"
    )
    click.echo(f"stats      {c.stats.file} md5 {b.stats_md5}, dataset {c.stats.dataset_version}")
    click.echo(f"           mean {list(b.stats.mean)} std {list(b.stats.std)}")
    click.echo(f"sentinels  {list(c.sentinels.values)} nan={c.sentinels.nan} inf={c.sentinels.inf}")
    for n, step in enumerate(c.preprocessing, 1):
        where = "host" if step.op == "pad_to_multiple" else step.where
        params = f" {step.params}" if step.params else ""
        click.echo(f"step {n}     {step.op:<17} {where}{params}")
    p = c.postprocessing
    click.echo(f"post       {p.activation}, labels {list(p.labels)}, threshold {p.threshold}")
    click.echo(
        f"golden     {len(c.golden.files)} from {c.golden.source}, atol {c.golden.atol}, "
        f"max error {b.golden_max_error:.2g}"
    )
    for name, entry in sorted(b.manifest.files.items()):
        click.echo(f"file       {name:<34} {entry.size:>10}  {entry.sha256[:16]}")
