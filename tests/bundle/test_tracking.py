"""Bundles in MLflow, against real ``mlflow server`` processes started here (no mocks).

One server, started once for the module, keeps its artifacts in a local directory and serves
them (``--serve-artifacts``), so clients upload and download over HTTP; one experiment keeps
its artifacts in a bucket on the moto S3 server, which clients reach directly. The run's
params, tags and artifacts are read back with ``MlflowClient``; the logged pyfunc model is
loaded with ``mlflow.pyfunc.load_model`` and must predict exactly what ``runtime.infer`` does;
pulls are compared by digest; artifacts changed in the store must be refused by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from object_stores import free_port
from support import stats_bytes
from tilecast.bundle import load_bundle
from tilecast.bundle.contract import Contract, default_steps
from tilecast.bundle.runtime import infer
from tilecast.cli.main import cli
from tilecast.errors import BundleError, BundleIntegrityError, ContractError, InputError

mlflow = pytest.importorskip("mlflow", reason="the tracking extra is not installed")

from tilecast.bundle.mlflow_model import as_contract_dtype  # noqa: E402  (imports mlflow)
from tilecast.bundle.tracking import (  # noqa: E402
    TAG_COMMIT,
    TAG_DIGEST,
    TrackingError,
    log_bundle,
    pull_bundle,
    transform_log,
)

DEMO = Path(__file__).resolve().parents[2] / "models" / "rts-demo"
SERVER_START_LIMIT_S = 180


@dataclass(frozen=True)
class Server:
    uri: str
    artifacts: Path  # --artifacts-destination, a local directory
    started_in_s: float

    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(tracking_uri=self.uri)

    def artifact_path(self, uri: str) -> Path:
        """Where an ``mlflow-artifacts:/...`` URI lives on the server's disk."""
        assert uri.startswith("mlflow-artifacts:/"), uri
        return self.artifacts / uri.removeprefix("mlflow-artifacts:/").lstrip("/")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``mlflow server`` with a SQLite store and a local artifact root it serves."""
    workdir = tmp_path_factory.mktemp("mlflow")
    artifacts = workdir / "artifacts"
    port = free_port()
    log_path = workdir / "server.log"
    cmd = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}"),
        *("--serve-artifacts", "--artifacts-destination", artifacts.as_uri()),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # no job runner: a second process that nothing here uses, and it slows the start
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        # its own process group: the server runs uvicorn as a child
        proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > SERVER_START_LIMIT_S:
                pytest.fail(
                    f"mlflow server not up in {SERVER_START_LIMIT_S} s:\n{log_path.read_text()}"
                )
            time.sleep(0.25)
        yield Server(uri=uri, artifacts=artifacts, started_in_s=time.monotonic() - started)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def tracking(server: Server) -> Iterator[Server]:
    """``mlflow.pyfunc.load_model`` reads the global tracking URI: set it for one test."""
    mlflow.set_tracking_uri(server.uri)
    yield server
    mlflow.set_tracking_uri(None)


@dataclass(frozen=True)
class Logged:
    run_id: str
    digest: str
    registered: str
    stdout: str


@pytest.fixture(scope="module")
def demo_logged(server: Server) -> Logged:
    """The demo bundle logged once through the CLI, registered under a fresh name."""
    name = f"rts-demo-{uuid.uuid4().hex[:6]}"
    result = CliRunner().invoke(
        cli,
        [
            "bundle",
            "log",
            str(DEMO),
            "--tracking-uri",
            server.uri,
            "--experiment",
            "demo",
            "--registered-model",
            name,
        ],
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line[:1] != " ")
    return Logged(
        run_id=lines["run"].split()[0],
        digest=lines["digest"],
        registered=name,
        stdout=result.stdout,
    )


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def artifact_names(client: mlflow.MlflowClient, run_id: str, path: str) -> set[str]:
    names: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            names |= artifact_names(client, run_id, info.path)
        else:
            names.add(info.path)
    return names


def flip_byte(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    return bytes(flipped)


# -- with a tracking server ------------------------------------------------------------------


@pytest.mark.slow
def test_run_records_the_transform_log_statistics_digest_and_files(server, demo_logged, tmp_path):
    client = server.client()
    run = client.get_run(demo_logged.run_id)
    params, tags = run.data.params, run.data.tags
    manifest = json.loads((DEMO / "manifest.json").read_text())
    contract = json.loads((DEMO / "contract.json").read_text())
    stats_file = (DEMO / "normalization_stats.json").read_bytes()
    stats = json.loads(stats_file)

    assert demo_logged.digest == manifest["bundle_digest"]
    assert params["bundle.digest"] == tags[TAG_DIGEST] == manifest["bundle_digest"]
    md5 = hashlib.md5(stats_file).hexdigest()
    assert params["stats.md5"] == tags["tilecast.stats_md5"] == md5 == contract["stats"]["md5"]
    assert params["stats.dataset_version"] == tags["tilecast.dataset_version"]
    assert params["stats.dataset_version"] == stats["dataset_version"]

    # the steps in the contract's order, where each runs, then what runs after the model
    steps = contract["preprocessing"]
    ops = [s["op"] for s in steps] + ["activate", "crop_padding"]
    logged_ops = [params[f"transform.{n}.operation"] for n in range(1, len(ops) + 1)]
    assert logged_ops == ops
    assert f"transform.{len(ops) + 1}.operation" not in params
    for n, step in enumerate(steps, 1):
        where = "host" if step["op"] == "pad_to_multiple" else step["where"]
        assert params[f"transform.{n}.where"] == where
        assert params[f"transform.{n}.stage"] == "pre"
    by_op = {
        params[f"transform.{n}.operation"]: json.loads(params[f"transform.{n}.parameters"])
        for n in range(1, len(ops) + 1)
    }
    assert by_op["normalize"] == {"mean": stats["mean"], "std": stats["std"]}
    assert by_op["pad_to_multiple"]["multiple"] == contract["alignment"]["multiple"]
    assert by_op["scale_values"]["input_range"] == contract["input"]["input_range"]
    assert by_op["activate"] == {"activation": contract["postprocessing"]["activation"]}
    assert tags["tilecast.transforms"].startswith("guard_sentinels@host > reorder_channels@host")

    # the bundle's files under bundle/, byte for byte, and the transform log as a document
    assert artifact_names(client, demo_logged.run_id, "bundle") == {
        f"bundle/{name}" for name in files_under(DEMO)
    }
    with_files = Path(client.download_artifacts(demo_logged.run_id, "", dst_path=str(tmp_path)))
    assert files_under(with_files / "bundle") == files_under(DEMO)
    document = json.loads((with_files / "transform_log.json").read_text())
    assert [s["operation"] for s in document["steps"]] == ops
    assert document["bundle_digest"] == manifest["bundle_digest"]
    assert document["statistics"] == {
        "file": "normalization_stats.json",
        "md5": md5,
        "dataset_version": stats["dataset_version"],
    }

    version = client.get_model_version(demo_logged.registered, "1")
    assert version.run_id == demo_logged.run_id
    assert version.tags[TAG_DIGEST] == manifest["bundle_digest"]


@pytest.mark.slow
def test_pyfunc_model_predicts_what_the_runtime_infers(tracking, demo_logged):
    model = mlflow.pyfunc.load_model(f"models:/{demo_logged.registered}/1")
    bundle = load_bundle(DEMO, check_golden=False)  # the reference: golden pairs add nothing
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(2, 3, 150, 203), dtype=np.uint8)
    images[1, :, :40, :60] = 0  # a dark corner, for something other than noise

    def reference(image: np.ndarray) -> np.ndarray:
        order = bundle.contract.input.channel_order
        return infer(
            bundle.contract, bundle.stats, bundle.model, image, channel_order=order
        ).probabilities

    one = model.predict(images[0])
    assert one.dtype == np.float32 and one.shape == (1, 150, 203)
    assert np.array_equal(one, reference(images[0]))
    batch = model.predict(images)
    assert batch.shape == (2, 1, 150, 203)
    assert np.array_equal(batch[1], reference(images[1]))
    # JSON carries no dtype: integers that fit are the same pixels; floats are refused
    assert np.array_equal(model.predict(images[0].astype(np.int64)), one)
    with pytest.raises(InputError, match="expects uint8 pixels, the input is float64"):
        model.predict(images[0] / 255.0)


@pytest.mark.slow
def test_pull_by_run_and_by_registered_model_restores_the_same_bundle(
    server, demo_logged, tmp_path
):
    by_run = tmp_path / "by-run"
    result = CliRunner().invoke(
        cli,
        [
            "bundle",
            "pull",
            f"runs:/{demo_logged.run_id}",
            "--tracking-uri",
            server.uri,
            "--out",
            str(by_run),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"digest  {demo_logged.digest}" in result.stdout.splitlines()

    by_model = pull_bundle(
        f"models:/{demo_logged.registered}/1", tracking_uri=server.uri, out=tmp_path / "by-model"
    )
    assert by_model.digest == demo_logged.digest
    assert by_model.run_id == demo_logged.run_id
    assert load_bundle(by_run).digest == demo_logged.digest
    assert files_under(by_run) == files_under(by_model.out) == files_under(DEMO)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["by-model", "by-run"]  # no temporaries

    with pytest.raises(BundleError, match="exists and is not empty"):
        pull_bundle(f"runs:/{demo_logged.run_id}", tracking_uri=server.uri, out=by_run)


@pytest.mark.slow
def test_a_changed_artifact_is_refused_naming_the_file(server, make_bundle, tmp_path):
    name = f"tiny-{uuid.uuid4().hex[:6]}"
    logged = log_bundle(
        make_bundle(), tracking_uri=server.uri, experiment="tamper", registered_model=name
    )
    client = server.client()
    run_root = server.artifact_path(client.get_run(logged.run_id).info.artifact_uri)
    stats = run_root / "bundle" / "normalization_stats.json"
    stats.write_bytes(flip_byte(stats.read_bytes()))
    with pytest.raises(BundleIntegrityError) as err:
        pull_bundle(f"runs:/{logged.run_id}", tracking_uri=server.uri, out=tmp_path / "out")
    message = str(err.value)
    assert f"runs:/{logged.run_id}/bundle/normalization_stats.json: sha256 is" in message
    assert "manifest.json expects" in message

    # the registered model's own copy (what MLflow serving loads) is checked the same way
    # the server answers a version's model_id in its source, models:/<model id>
    source = client.get_model_version(name, "1").source
    assert source == logged.model_uri
    model_id = source.removeprefix("models:/")
    model_root = server.artifact_path(client.get_logged_model(model_id).artifact_location)
    program = next(model_root.rglob("model.pt2"))
    program.write_bytes(flip_byte(program.read_bytes()))
    with pytest.raises(BundleIntegrityError, match=rf"models:/{name}/1/.*model\.pt2: sha256 is"):
        pull_bundle(f"models:/{name}/1", tracking_uri=server.uri, out=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left


@pytest.mark.slow
def test_another_valid_bundle_in_the_store_is_refused_by_the_recorded_digest(
    server, make_bundle, tmp_path
):
    logged = log_bundle(make_bundle(), tracking_uri=server.uri, experiment="swap")
    other = DEMO  # valid, and not the bundle that was logged
    client = server.client()
    run_root = server.artifact_path(client.get_run(logged.run_id).info.artifact_uri)
    shutil.rmtree(run_root / "bundle")
    shutil.copytree(other, run_root / "bundle")
    other_digest = json.loads((other / "manifest.json").read_text())["bundle_digest"]
    with pytest.raises(BundleIntegrityError) as err:
        pull_bundle(f"runs:/{logged.run_id}", tracking_uri=server.uri, out=tmp_path / "out")
    assert f"digest is {other_digest}" in str(err.value)
    assert f"recorded {logged.digest}" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_training_commit_from_the_training_layout(server, make_bundle, tmp_path):
    layout = tmp_path / "train"
    layout.mkdir()
    (layout / "normalization_stats.json").write_bytes(stats_bytes())
    commit = "0123456789abcdef0123456789abcdef01234567"
    (layout / "config.yaml").write_text(
        yaml.safe_dump({"model_name": "tiny", "git_commit": commit})
    )
    logged = log_bundle(make_bundle(), tracking_uri=server.uri, training_dir=layout)
    assert logged.training_commit == commit
    run = server.client().get_run(logged.run_id)
    assert run.data.tags[TAG_COMMIT] == commit
    assert run.data.tags["mlflow.source.git.commit"] == commit
    assert run.data.params["training.commit"] == commit

    # a layout whose statistics are not the bundle's is refused before any run is made
    (layout / "normalization_stats.json").write_bytes(stats_bytes(mean=[1.0, 2.0, 3.0]))
    with pytest.raises(ContractError, match=r"has md5 .* was made with .*not this bundle's"):
        log_bundle(make_bundle(), tracking_uri=server.uri, experiment="no-run", training_dir=layout)
    assert server.client().get_experiment_by_name("no-run") is None


@pytest.mark.slow
def test_a_bundle_that_does_not_verify_is_not_logged(server, bundle_copy):
    bundle = bundle_copy()
    program = bundle / "model.pt2"
    program.write_bytes(flip_byte(program.read_bytes()))
    with pytest.raises(BundleIntegrityError, match=r"model\.pt2: sha256 is"):
        log_bundle(bundle, tracking_uri=server.uri, experiment="unverified")
    assert server.client().get_experiment_by_name("unverified") is None


@pytest.mark.slow
def test_artifacts_in_s3_round_trip_and_a_changed_object_is_refused(
    server, s3_bucket, make_bundle, tmp_path, monkeypatch
):
    # an experiment whose artifacts live in a bucket: clients read and write them there
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", os.environ["AWS_ENDPOINT_URL"])
    name = f"s3-{uuid.uuid4().hex[:6]}"
    server.client().create_experiment(name, artifact_location=f"{s3_bucket}/{name}")
    logged = log_bundle(make_bundle(), tracking_uri=server.uri, experiment=name)
    prefix = server.client().get_run(logged.run_id).info.artifact_uri
    assert prefix.startswith(f"{s3_bucket}/{name}/")
    s3 = fsspec.filesystem("s3")
    stored = {p.split("/artifacts/bundle/", 1)[1] for p in s3.find(f"{prefix}/bundle")}
    assert stored == set(files_under(make_bundle()))

    pulled = pull_bundle(f"runs:/{logged.run_id}", tracking_uri=server.uri, out=tmp_path / "a")
    assert pulled.digest == logged.digest
    assert files_under(pulled.out) == files_under(make_bundle())

    key = f"{prefix}/bundle/normalization_stats.json"
    s3.pipe_file(key, flip_byte(s3.cat_file(key)))
    with pytest.raises(BundleIntegrityError, match=r"bundle/normalization_stats\.json: sha256"):
        pull_bundle(f"runs:/{logged.run_id}", tracking_uri=server.uri, out=tmp_path / "b")
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_server_errors_name_the_server_and_the_source(server, tmp_path):
    with pytest.raises(TrackingError, match=rf"{server.uri}: pulling runs:/0badc0de: .*not found"):
        pull_bundle("runs:/0badc0de", tracking_uri=server.uri, out=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# -- without a server ------------------------------------------------------------------------


@pytest.mark.parametrize("baked", [(), ("scale_values", "normalize")])
def test_transform_log_says_where_each_step_runs(baked):
    bundle = load_bundle(DEMO, check_golden=False)
    stats = json.loads((DEMO / "normalization_stats.json").read_text())
    contract = Contract.model_validate(
        {
            **bundle.contract.model_dump(mode="json"),
            "preprocessing": [s.model_dump(mode="json") for s in default_steps(baked=baked)],
        }
    )
    steps = transform_log(contract, bundle.stats)
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    where = {s["operation"]: s["where"] for s in steps}
    for op in ("scale_values", "normalize"):
        assert where[op] == ("model" if op in baked else "host")
    assert where["pad_to_multiple"] == where["guard_sentinels"] == "host"
    assert [s["operation"] for s in steps if s["stage"] == "post"] == ["activate", "crop_padding"]
    normalize = next(s for s in steps if s["operation"] == "normalize")
    assert normalize["parameters"] == {"mean": stats["mean"], "std": stats["std"]}
    fill = next(s for s in steps if s["operation"] == "fill_invalid")
    assert fill["parameters"]["policy"] == "mean"
    assert bundle.contract.input.value_scaling == "raw"  # so the fill means are in input units
    assert fill["parameters"]["mean"] == pytest.approx(stats["mean"])


def test_pyfunc_input_is_cast_only_when_no_value_changes():
    ints = np.array([[[0, 255]]], dtype=np.int64)
    assert as_contract_dtype(ints, "uint8").dtype == np.uint8
    with pytest.raises(InputError, match=r"expects uint8 pixels \(0\.\.255\), .* holds 1\.\.256"):
        as_contract_dtype(ints + 1, "uint8")
    with pytest.raises(InputError, match="expects uint16 pixels, the input is float64"):
        as_contract_dtype(ints.astype(np.float64), "uint16")
    assert as_contract_dtype(ints.astype(np.float64), "float32").dtype == np.float32


def test_pull_names_the_sources_it_understands(tmp_path):
    with pytest.raises(
        BundleError, match=r"expected runs:/RUN_ID, models:/NAME/VERSION .* got 's3"
    ):
        pull_bundle("s3://bucket/bundle", tracking_uri="http://127.0.0.1:9", out=tmp_path / "o")
    assert list(tmp_path.iterdir()) == []


def test_without_mlflow_the_error_names_the_extra(monkeypatch, tmp_path):
    from tilecast.optional import MissingExtraError

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(MissingExtraError) as err:
        pull_bundle("runs:/x", tracking_uri="http://127.0.0.1:9", out=tmp_path / "o")
    assert str(err.value).startswith("pulling a bundle from MLflow needs mlflow")
    assert str(err.value).endswith("pip install 'tilecast[tracking]'")

    # the CLI says the same in one line, without a traceback
    result = CliRunner().invoke(
        cli, ["bundle", "log", str(DEMO), "--tracking-uri", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "MissingExtraError: logging a bundle to MLflow needs mlflow" in result.output
    assert "pip install 'tilecast[tracking]'" in result.output
    assert "Traceback" not in result.output
