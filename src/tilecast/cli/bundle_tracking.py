"""``tilecast bundle log | pull``: bundles in an MLflow tracking server (the ``tracking`` extra)."""

from __future__ import annotations

import click

from tilecast.cli.options import reports_errors

tracking_uri_option = click.option(
    "--tracking-uri",
    required=True,
    envvar="MLFLOW_TRACKING_URI",
    show_envvar=True,
    help="The MLflow tracking server, e.g. http://127.0.0.1:5000.",
)


@click.command("log")
@click.argument("bundle_uri", metavar="BUNDLE")
@tracking_uri_option
@click.option("--experiment", help="Experiment to log into (created when missing).")
@click.option(
    "--registered-model", help="Register the logged pyfunc model under this name (a new version)."
)
@click.option(
    "--training-dir",
    help="The training layout the bundle was made from; the commit its config.yaml names "
    "(git_commit) is recorded.",
)
@click.option("--run-name", help="Name of the run (default: the contract's name-version).")
@reports_errors
def log_bundle(
    bundle_uri: str,
    tracking_uri: str,
    experiment: str | None,
    registered_model: str | None,
    training_dir: str | None,
    run_name: str | None,
) -> None:
    """Verify BUNDLE, then record it as one MLflow run.

    The run holds the transform log (each preprocessing and postprocessing step with its
    parameters and where it runs), the statistics' md5 and dataset version, the bundle
    digest, the training commit, the bundle's files under bundle/, and a pyfunc model whose
    predict runs tilecast's runtime on the bundle.
    """
    from tilecast.bundle.tracking import log_bundle

    result = log_bundle(
        bundle_uri,
        tracking_uri=tracking_uri,
        experiment=experiment,
        registered_model=registered_model,
        training_dir=training_dir,
        run_name=run_name,
    )
    click.echo(f"run     {result.run_id} (experiment {result.experiment_id})")
    click.echo(f"model   {result.model_uri}")
    if result.registered_name is not None:
        click.echo(f"        models:/{result.registered_name}/{result.registered_version}")
    click.echo(f"commit  {result.training_commit or '(none recorded)'}")
    click.echo(f"digest  {result.digest}")


@click.command("pull")
@click.argument("source", metavar="SOURCE")
@tracking_uri_option
@click.option("--out", required=True, help="Directory to restore the bundle into.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@reports_errors
def pull_bundle(source: str, tracking_uri: str, out: str, overwrite: bool) -> None:
    """Restore a logged bundle from SOURCE into --out, verified, and print its digest.

    SOURCE is runs:/RUN_ID (the run's bundle/ artifacts), models:/NAME/VERSION or
    models:/NAME@ALIAS (the registered model's copy). The bundle must load with every check
    and have the digest recorded when it was logged; otherwise nothing is written.
    """
    from tilecast.bundle.tracking import pull_bundle

    result = pull_bundle(source, tracking_uri=tracking_uri, out=out, overwrite=overwrite)
    click.echo(f"pulled  {source} into {result.out}: {result.name} {result.version}")
    click.echo(f"digest  {result.digest}")
