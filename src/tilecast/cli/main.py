"""``tilecast``: the entry point that gathers the subcommands."""

from __future__ import annotations

import click

from tilecast import __version__
from tilecast.cli.bundle import bundle
from tilecast.cli.bundle_import import import_onnx
from tilecast.cli.bundle_tracking import log_bundle, pull_bundle
from tilecast.cli.classify import classify
from tilecast.cli.options import setup_logging
from tilecast.cli.predict import predict
from tilecast.cli.rts import rts
from tilecast.cli.rts_launch import launch
from tilecast.cli.serve import serve
from tilecast.cli.welllog import welllog


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(__version__, prog_name="tilecast")
def cli(verbose: int) -> None:
    """Run trained PyTorch models over large, messy inputs, with the model's contract enforced."""
    setup_logging(verbose)


cli.add_command(predict)
cli.add_command(classify)
bundle.add_command(log_bundle)
bundle.add_command(pull_bundle)
bundle.add_command(import_onnx)
cli.add_command(bundle)
rts.add_command(launch)
cli.add_command(rts)
cli.add_command(welllog)
cli.add_command(serve)
