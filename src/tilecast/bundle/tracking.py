"""Bundles in MLflow: log a verified bundle as one run, and pull one back, verified.

``log_bundle`` records what a model needs to be served the way it was trained: the contract's
ordered steps as a transform log (step, operation, resolved parameters, where it runs) in the
run's params and tags and as ``transform_log.json``; the statistics' md5 and dataset version;
the bundle digest; the training commit when the training layout names one; the bundle's files
under ``bundle/``; and an MLflow pyfunc model whose ``predict`` is tilecast's runtime on the
same bundle (``tilecast.bundle.mlflow_model``), so whoever serves it through MLflow gets the
contract too. The bundle is loaded and verified before anything is logged, and the files
logged are the bytes checked against the manifest, not a second read.

``pull_bundle`` restores the files of ``runs:/ID`` (the run's ``bundle/``) or
``models:/NAME/VERSION`` / ``models:/NAME@ALIAS`` (the registered pyfunc model's own copy,
the one MLflow serving loads) into a temporary sibling of the output, loads it with every
check and the digest recorded in the tracking store, and only then moves it into place.

mlflow is the ``tracking`` extra, imported when one of these runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tilecast.bundle.contract import Contract
from tilecast.bundle.load import Bundle, load_bundle
from tilecast.bundle.manifest import MANIFEST_NAME, parse_manifest, verify_file
from tilecast.bundle.runtime import fill_value_mean
from tilecast.bundle.stats import NormalizationStats, md5_hex
from tilecast.errors import BundleError, BundleIntegrityError, ContractError, TilecastError
from tilecast.io import storage
from tilecast.optional import import_optional

log = logging.getLogger(__name__)

#: where the bundle's files go in the run's artifacts
ARTIFACT_DIR = "bundle"
TRANSFORM_LOG = "transform_log.json"
#: the pyfunc model's name in the run, and the key of the bundle among its artifacts
PYFUNC_NAME = "model"
PYFUNC_ARTIFACT = "bundle"
TAG_DIGEST = "tilecast.bundle_digest"
TAG_STATS_MD5 = "tilecast.stats_md5"
TAG_DATASET = "tilecast.dataset_version"
TAG_COMMIT = "tilecast.training_commit"
TAG_TRANSFORMS = "tilecast.transforms"
#: keys of the training layout's config.yaml that may name the commit training ran at
COMMIT_KEYS = ("git_commit", "training_commit", "commit")
#: the manifest producer key a bundle made from a training layout may carry the commit in
PRODUCER_COMMIT = "training_commit"
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


class TrackingError(TilecastError, OSError):
    """The tracking server refused or failed a request (the run, model or artifact is named)."""


@contextmanager
def _server_errors(mlflow: ModuleType, tracking_uri: str, doing: str) -> Iterator[None]:
    """MLflow's exceptions as one sentence naming the server and what was being done."""
    try:
        yield
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"{tracking_uri}: {doing}: {exc.message}") from exc


def _mlflow(purpose: str) -> ModuleType:
    """``mlflow`` with the submodules used here, or a sentence naming the ``tracking`` extra."""
    mlflow = import_optional("mlflow", extra="tracking", purpose=purpose)
    for sub in ("mlflow.artifacts", "mlflow.exceptions", "mlflow.models", "mlflow.pyfunc"):
        import_optional(sub, extra="tracking", purpose=purpose)
    return mlflow


# -- what is logged --------------------------------------------------------------------------


def transform_log(contract: Contract, stats: NormalizationStats) -> list[dict[str, Any]]:
    """The contract's steps in the order they run, each with its parameters resolved.

    Parameters come from where the contract takes them (input spec, statistics, alignment),
    so the log says what was applied, not only what was named. ``stage`` is ``pre`` for the
    preprocessing steps and ``post`` for what ``runtime.infer`` does after the model;
    ``where`` is ``host`` or ``model`` (baked into the model program).
    """
    spec = contract.input
    resolved: dict[str, dict[str, Any]] = {
        "guard_sentinels": contract.sentinels.model_dump(mode="json"),
        "reorder_channels": {"channel_order": spec.channel_order},
        "fill_invalid": {},
        "scale_values": {
            "value_scaling": spec.value_scaling,
            "input_range": list(spec.input_range),
            "dtype": spec.dtype,
        },
        "normalize": {"mean": list(stats.mean), "std": list(stats.std)},
        "pad_to_multiple": {
            "multiple": contract.alignment.multiple,
            "pad_mode": contract.alignment.pad_mode,
        },
    }
    fill = contract.step("fill_invalid")
    if fill is not None and fill.params.get("policy", "mean") == "mean":
        resolved["fill_invalid"] = {"mean": fill_value_mean(contract, stats)}
    steps: list[dict[str, Any]] = []
    for step in contract.preprocessing:
        steps.append(
            {
                "step": len(steps) + 1,
                "stage": "pre",
                "operation": step.op,
                "parameters": {**step.params, **resolved.get(step.op, {})},
                # padding always runs on the host (runtime.prepare), whatever the step says
                "where": "host" if step.op == "pad_to_multiple" else step.where,
            }
        )
    post = contract.postprocessing
    for op, params in (
        ("activate", {"activation": post.activation}),
        ("crop_padding", {}),
    ):
        steps.append(
            {
                "step": len(steps) + 1,
                "stage": "post",
                "operation": op,
                "parameters": params,
                "where": "host",
            }
        )
    return steps


def _steps_line(steps: list[dict[str, Any]]) -> str:
    """One line for the run's tag: ``guard_sentinels@host > ... | activate@host > ...``."""
    pre = " > ".join(f"{s['operation']}@{s['where']}" for s in steps if s["stage"] == "pre")
    post = " > ".join(f"{s['operation']}@{s['where']}" for s in steps if s["stage"] == "post")
    return f"{pre} | {post}"


def _commit_value(value: object, *, where: str) -> str:
    commit = str(value).strip().lower()
    if not _COMMIT.match(commit):
        raise ContractError(
            f"{where} should be a git commit hash (7 to 64 hex digits), got {value!r}"
        )
    return commit


def layout_commit(training_dir: str | os.PathLike[str], bundle: Bundle) -> str | None:
    """The commit the training layout's ``config.yaml`` names (``git_commit``), if any.

    The layout must be this bundle's: its statistics file has the md5 the contract records,
    or it is refused naming both.
    """
    src = os.fspath(training_dir).rstrip("/")
    stats_md5 = md5_hex(storage.read_bytes(storage.join(src, bundle.contract.stats.file)))
    if stats_md5 != bundle.contract.stats.md5:
        raise ContractError(
            f"{src}: its {bundle.contract.stats.file} has md5 {stats_md5}, the bundle "
            f"{bundle.uri} was made with {bundle.contract.stats.md5}: not this bundle's "
            "training layout"
        )
    where = storage.join(src, "config.yaml")
    try:
        config = yaml.safe_load(storage.read_bytes(where))
    except yaml.YAMLError as exc:
        raise ContractError(f"{where}: not YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ContractError(f"{where}: expected a mapping, got {type(config).__name__}")
    for key in COMMIT_KEYS:
        if key in config:
            return _commit_value(config[key], where=f"{where}: {key}")
    log.warning("%s names no training commit (none of %s)", where, ", ".join(COMMIT_KEYS))
    return None


def training_commit(
    bundle: Bundle, *, training_dir: str | os.PathLike[str] | None = None
) -> str | None:
    """The commit training ran at: the manifest's producer record (``training_commit``, when
    ``bundle create`` carried it over), else the training layout's ``config.yaml``. When both
    name one they must agree."""
    recorded = bundle.manifest.producer.get(PRODUCER_COMMIT)
    if recorded is not None:
        recorded = _commit_value(
            recorded, where=f"{bundle.uri}/{MANIFEST_NAME}: producer.{PRODUCER_COMMIT}"
        )
    from_layout = None if training_dir is None else layout_commit(training_dir, bundle)
    if recorded and from_layout and recorded != from_layout:
        raise ContractError(
            f"{bundle.uri}/{MANIFEST_NAME} records training commit {recorded}, the training "
            f"layout {os.fspath(training_dir)} names {from_layout}"  # type: ignore[arg-type]
        )
    return recorded or from_layout


def run_record(
    bundle: Bundle, *, commit: str | None
) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """The run's params, its tags and the ``transform_log.json`` document."""
    c = bundle.contract
    steps = transform_log(c, bundle.stats)
    params: dict[str, str] = {
        "bundle.digest": bundle.digest,
        "contract.name": c.name,
        "contract.version": c.version,
        "contract.digest": c.digest(),
        "model.format": c.model.format,
        "model.architecture": c.model.architecture or "",
        "input": f"{c.input.channels} x {c.input.dtype} {c.input.channel_order}",
        "stats.file": c.stats.file,
        "stats.md5": bundle.stats_md5,
        "stats.dataset_version": c.stats.dataset_version,
        "postprocessing.activation": c.postprocessing.activation,
        "postprocessing.labels": json.dumps(list(c.postprocessing.labels)),
        "postprocessing.threshold": str(c.postprocessing.threshold),
    }
    for s in steps:
        key = f"transform.{s['step']}"
        params[f"{key}.operation"] = s["operation"]
        params[f"{key}.where"] = s["where"]
        params[f"{key}.stage"] = s["stage"]
        params[f"{key}.parameters"] = json.dumps(s["parameters"], sort_keys=True)
    tags = {
        TAG_DIGEST: bundle.digest,
        TAG_STATS_MD5: bundle.stats_md5,
        TAG_DATASET: c.stats.dataset_version,
        TAG_TRANSFORMS: _steps_line(steps),
        "tilecast.contract": f"{c.name} {c.version}",
    }
    if commit is not None:
        params["training.commit"] = commit
        tags[TAG_COMMIT] = commit
        # MLflow's own source-commit tag, which its UI shows; otherwise it would record the
        # commit of whatever checkout the logging process happens to run from
        tags["mlflow.source.git.commit"] = commit
    document = {
        "bundle_digest": bundle.digest,
        "contract": {"name": c.name, "version": c.version, "digest": c.digest()},
        "statistics": {
            "file": c.stats.file,
            "md5": bundle.stats_md5,
            "dataset_version": c.stats.dataset_version,
        },
        "training_commit": commit,
        "postprocessing": c.postprocessing.model_dump(mode="json"),
        "steps": steps,
    }
    return params, tags, document


def stage_bundle_files(bundle: Bundle, dest: Path) -> None:
    """Copy the bundle's files into ``dest``, each checked against the manifest on the way."""
    for name in bundle.manifest.files:
        data = storage.read_bytes(storage.join(bundle.uri, name))
        verify_file(bundle.manifest, name, data, where=bundle.uri)
        storage.write_bytes(dest / name, data)
    data = storage.read_bytes(storage.join(bundle.uri, MANIFEST_NAME))
    found = parse_manifest(data, where=bundle.uri).bundle_digest
    if found != bundle.digest:
        raise BundleIntegrityError(
            f"{bundle.uri}/{MANIFEST_NAME}: changed while logging: bundle_digest is {found}, "
            f"it was {bundle.digest} when loaded"
        )
    storage.write_bytes(dest / MANIFEST_NAME, data)


# -- log -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedBundle:
    """What ``log_bundle`` recorded."""

    run_id: str
    experiment_id: str
    digest: str
    model_uri: str  # the pyfunc model: models:/<model id>
    training_commit: str | None
    registered_name: str | None = None
    registered_version: str | None = None


@contextmanager
def _fluent(mlflow: ModuleType, uri: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``) reads a global tracking URI and prints each run's
    URL to stdout; for the call, set the URI and keep the library silent, then restore both.

    ``set_tracking_uri`` mirrors the global in ``MLFLOW_TRACKING_URI``, so that variable holds
    whatever was in force before (None: nothing was).
    """
    quiet = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
    before = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", quiet)}
    mlflow.set_tracking_uri(uri)
    os.environ[quiet] = "true"
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before["MLFLOW_TRACKING_URI"])  # type: ignore[arg-type]
        if before[quiet] is None:
            os.environ.pop(quiet, None)
        else:
            os.environ[quiet] = before[quiet]


def _pip_requirements() -> list[str]:
    import torch

    import tilecast

    mlflow = _mlflow("logging a bundle to MLflow")
    return [
        f"tilecast=={tilecast.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow=={mlflow.__version__}",
    ]


def log_bundle(
    bundle_uri: str | os.PathLike[str],
    *,
    tracking_uri: str,
    experiment: str | None = None,
    registered_model: str | None = None,
    training_dir: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
) -> LoggedBundle:
    """Verify the bundle, then record it as one MLflow run (see the module docstring).

    ``experiment`` is created when missing (default: MLflow's default experiment);
    ``registered_model`` registers the pyfunc model under that name; ``training_dir`` is the
    training layout the bundle was made from, read for the commit its ``config.yaml`` names.
    """
    mlflow = _mlflow("logging a bundle to MLflow")
    from tilecast.bundle.mlflow_model import MODEL_CODE

    bundle = load_bundle(bundle_uri)
    commit = training_commit(bundle, training_dir=training_dir)
    params, tags, document = run_record(bundle, commit=commit)
    c = bundle.contract
    workdir = Path(tempfile.mkdtemp(prefix="tilecast-mlflow-"))
    try:
        staged = workdir / ARTIFACT_DIR
        stage_bundle_files(bundle, staged)
        storage.write_text(workdir / TRANSFORM_LOG, json.dumps(document, indent=2) + "\n")
        storage.write_text(workdir / "tilecast_model.py", MODEL_CODE)
        with (
            _server_errors(mlflow, tracking_uri, f"logging bundle {bundle.uri}"),
            _fluent(mlflow, tracking_uri),
        ):
            client = mlflow.MlflowClient(tracking_uri=tracking_uri)
            experiment_id = None
            if experiment is not None:
                found = client.get_experiment_by_name(experiment)
                experiment_id = (
                    found.experiment_id
                    if found is not None
                    else client.create_experiment(experiment)
                )
            with mlflow.start_run(
                experiment_id=experiment_id,
                run_name=run_name or f"{c.name}-{c.version}",
                tags=tags,
            ) as run:
                mlflow.log_params(params)
                mlflow.log_artifact(str(workdir / TRANSFORM_LOG))
                mlflow.log_artifacts(str(staged), artifact_path=ARTIFACT_DIR)
                info = mlflow.pyfunc.log_model(
                    name=PYFUNC_NAME,
                    python_model=str(workdir / "tilecast_model.py"),
                    artifacts={PYFUNC_ARTIFACT: str(staged)},
                    model_config={"bundle_digest": bundle.digest},
                    pip_requirements=_pip_requirements(),
                    tags={TAG_DIGEST: bundle.digest},
                    registered_model_name=registered_model,
                )
            version = None
            if registered_model is not None:
                version = str(info.registered_model_version)
                client.set_model_version_tag(registered_model, version, TAG_DIGEST, bundle.digest)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    run_id = run.info.run_id
    log.info(
        "logged bundle %s (digest %s) as run %s, model %s%s",
        bundle.uri,
        bundle.digest[:12],
        run_id,
        info.model_uri,
        f", registered {registered_model} v{version}" if version else "",
    )
    return LoggedBundle(
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        digest=bundle.digest,
        model_uri=info.model_uri,
        training_commit=commit,
        registered_name=registered_model,
        registered_version=version,
    )


# -- pull ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PulledBundle:
    """A bundle restored from MLflow and verified to the digest the store recorded."""

    source: str
    out: Path
    digest: str
    run_id: str | None
    name: str
    version: str


_RUNS = re.compile(r"^runs:/(?P<run>[0-9A-Za-z_-]+)/?$")
_LOGGED_MODEL = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)/?$")
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")


def _recorded_digest(tags: Mapping[str, str], *, what: str) -> str:
    digest = tags.get(TAG_DIGEST)
    if not digest:
        raise BundleError(
            f"{what} has no {TAG_DIGEST} tag: it was not logged by `tilecast bundle log`, "
            "so there is no digest to verify a pulled bundle against"
        )
    return digest


def _logged_model_id(version: Any) -> str | None:
    """The logged model a registered version was made from; a tracking server answers its
    id only in the version's source, ``models:/<model id>``."""
    if version.model_id:
        return version.model_id
    match = _LOGGED_MODEL.match(version.source or "")
    return match["id"] if match else None


@dataclass(frozen=True)
class _Located:
    path: Path  # the downloaded bundle directory
    shown: str  # how to name it in messages: where it is in the store
    expected: str  # the digest the tracking store recorded
    run_id: str | None


def _locate(
    mlflow: ModuleType, client: Any, source: str, *, tracking_uri: str, into: Path
) -> _Located:
    """Download the bundle files ``source`` names into ``into``."""
    if match := _RUNS.match(source):
        run_id = match["run"]
        expected = _recorded_digest(client.get_run(run_id).data.tags, what=f"run {run_id}")
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=ARTIFACT_DIR,
            dst_path=str(into),
            tracking_uri=tracking_uri,
        )
        return _Located(Path(path), f"runs:/{run_id}/{ARTIFACT_DIR}", expected, run_id)
    if match := _MODELS.match(source):
        name = match["name"]
        if match["version"] is not None:
            mv = client.get_model_version(name, match["version"])
        else:
            mv = client.get_model_version_by_alias(name, match["alias"])
        what = f"registered model {name} version {mv.version}"
        # the digest the version was tagged with, else its logged model's, else its run's
        if TAG_DIGEST in (mv.tags or {}):
            expected = mv.tags[TAG_DIGEST]
        elif model_id := _logged_model_id(mv):
            expected = _recorded_digest(client.get_logged_model(model_id).tags, what=what)
        else:
            expected = _recorded_digest(client.get_run(mv.run_id).data.tags, what=what)
        uri = f"models:/{name}/{mv.version}"
        path = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri,
                dst_path=str(into),
                tracking_uri=tracking_uri,
                registry_uri=mlflow.get_registry_uri(),
            )
        )
        pyfunc = mlflow.models.Model.load(str(path)).flavors.get("python_function", {})
        artifacts = pyfunc.get("artifacts") or {}
        if PYFUNC_ARTIFACT not in artifacts:
            raise BundleError(
                f"{uri}: expected a tilecast pyfunc model with a {PYFUNC_ARTIFACT!r} "
                f"artifact, found artifacts {sorted(artifacts)}"
            )
        inner = artifacts[PYFUNC_ARTIFACT]["path"]
        return _Located(path / inner, f"{uri}/{inner}", expected, mv.run_id)
    raise BundleError(
        f"expected runs:/RUN_ID, models:/NAME/VERSION or models:/NAME@ALIAS, got {source!r}"
    )


def _check_recorded(found: _Located, digest: str) -> None:
    if digest != found.expected:
        raise BundleIntegrityError(
            f"{found.shown}: the pulled bundle's digest is {digest}, the tracking store "
            f"recorded {found.expected} when it was logged"
        )


def pull_bundle(
    source: str,
    *,
    tracking_uri: str,
    out: str | os.PathLike[str],
    overwrite: bool = False,
) -> PulledBundle:
    """Restore the bundle ``source`` names into ``out``, verified, or leave nothing behind.

    The files land in a temporary sibling of ``out``, must have the digest the tracking store
    recorded when the bundle was logged (the manifest's claim is compared first, so another
    bundle's model program is never read), are loaded with every check (manifest,
    statistics, model, golden pairs; a changed artifact is refused naming the file), and
    only then are moved into place.
    """
    mlflow = _mlflow("pulling a bundle from MLflow")
    if not storage.is_local(out):
        raise BundleError(f"{os.fspath(out)}: bundles are pulled to a local directory")
    final = storage.local_path(out).absolute()
    if final.exists() and any(final.iterdir()) and not overwrite:
        raise BundleError(f"{final}: exists and is not empty; pass overwrite to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        with (
            _server_errors(mlflow, tracking_uri, f"pulling {source}"),
            _fluent(mlflow, tracking_uri),
        ):
            found = _locate(mlflow, client, source, tracking_uri=tracking_uri, into=work)
        try:
            # a bundle other than the one logged is refused before its model program is read
            manifest = found.path / MANIFEST_NAME
            if manifest.is_file():
                claimed = parse_manifest(manifest.read_bytes(), where=str(found.path))
                _check_recorded(found, claimed.bundle_digest)
            bundle = load_bundle(found.path)
        except BundleError as exc:
            # name the file as it is in the store, not the temporary directory it landed in
            raise type(exc)(str(exc).replace(str(found.path), found.shown)) from exc
        _check_recorded(found, bundle.digest)
        found.path.chmod(0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(found.path, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("pulled %s into %s (digest %s)", source, final, bundle.digest[:12])
    return PulledBundle(
        source=source,
        out=final,
        digest=bundle.digest,
        run_id=found.run_id,
        name=bundle.contract.name,
        version=bundle.contract.version,
    )
