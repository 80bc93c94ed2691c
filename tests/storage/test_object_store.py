"""io.storage on s3:// and gs:// against real API servers (moto, gcp-storage-emulator)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from object_stores import clear_fs_caches
from tilecast.apps.rts.tilelist import parse_tile_list
from tilecast.bundle.load import load_bundle
from tilecast.errors import BundleIntegrityError, StorageError
from tilecast.io import storage

REPO = Path(__file__).resolve().parents[2]
DEMO_BUNDLE = REPO / "models" / "rts-demo"
TILES_CSV = (
    "tile_id,minx,miny,maxx,maxy,region\n"
    "r0_c0,-2467818.0,20001.0,-2466282.0,21537.0,demo\n"
    "r0_c1,-2467050.0,20001.0,-2465514.0,21537.0,demo\n"
)


def upload_tree(local: Path, uri: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            storage.write_bytes(
                storage.join(uri, path.relative_to(local).as_posix()), path.read_bytes()
            )


def test_round_trip(bucket):
    storage.write_bytes(storage.join(bucket, "a.bin"), b"\x00\x01payload")
    storage.write_text(storage.join(bucket, "sub/deeper/b.txt"), "héllo")
    storage.write_text(storage.join(bucket, "sub/c.txt"), "c")

    assert storage.read_bytes(storage.join(bucket, "a.bin")) == b"\x00\x01payload"
    assert storage.read_text(storage.join(bucket, "sub/deeper/b.txt")) == "héllo"
    assert storage.exists(storage.join(bucket, "a.bin"))
    assert not storage.exists(storage.join(bucket, "nothing-here.bin"))
    assert storage.list_files(bucket) == ["a.bin", "sub/c.txt", "sub/deeper/b.txt"]
    assert storage.list_files(storage.join(bucket, "sub")) == ["c.txt", "deeper/b.txt"]
    with storage.open_read(storage.join(bucket, "sub/c.txt")) as fh:
        assert fh.read() == b"c"


def test_list_files_does_not_match_sibling_prefixes(bucket):
    storage.write_text(storage.join(bucket, "run/x.txt"), "x")
    storage.write_text(storage.join(bucket, "run-2/y.txt"), "y")
    assert storage.list_files(storage.join(bucket, "run")) == ["x.txt"]
    with pytest.raises(StorageError, match="not a directory"):
        storage.list_files(storage.join(bucket, "ru"))


def test_put_replaces_the_object_whole(bucket):
    uri = storage.join(bucket, "obj.bin")
    v1, v2 = b"1" * 100_000, b"two"
    storage.write_bytes(uri, v1)
    assert storage.read_bytes(uri) == v1
    storage.write_bytes(uri, v2)
    assert storage.read_bytes(uri) == v2


def test_atomic_local_path_uploads_on_success(bucket):
    uri = storage.join(bucket, "out/tile.tif")
    with storage.atomic_local_path(uri, suffix=".tif") as tmp:
        assert tmp.suffix == ".tif"
        tmp.write_bytes(b"pixels")
        assert not storage.exists(uri)  # nothing is visible before the block ends
    assert storage.read_bytes(uri) == b"pixels"
    assert not tmp.exists()


def test_failed_write_in_atomic_local_path_leaves_no_object(bucket):
    uri = storage.join(bucket, "out/tile.tif")
    with pytest.raises(RuntimeError, match="boom"), storage.atomic_local_path(uri) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert not tmp.exists()
    assert not storage.exists(uri)


def test_failed_rewrite_keeps_the_old_object(bucket):
    uri = storage.join(bucket, "keep.txt")
    storage.write_text(uri, "old")
    with pytest.raises(RuntimeError), storage.atomic_local_path(uri) as tmp:
        tmp.write_text("new but broken")
        raise RuntimeError("writer died")
    assert storage.read_text(uri) == "old"


def test_missing_object_names_the_url(bucket):
    uri = storage.join(bucket, "missing.bin")
    with pytest.raises(StorageError, match=rf"^{uri}: no such file$"):
        storage.read_bytes(uri)
    with pytest.raises(StorageError, match=rf"^{uri}: no such file$"):
        storage.read_text(uri)


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_missing_bucket_is_named(scheme, request):
    request.getfixturevalue(f"{scheme}_bucket")  # the server is up
    uri = f"{scheme}://tc-no-such-bucket/x/y.bin"
    with pytest.raises(StorageError, match=r"no such bucket 'tc-no-such-bucket'") as err:
        storage.read_bytes(uri)
    assert uri in str(err.value)
    with pytest.raises(StorageError, match=r"no such bucket 'tc-no-such-bucket'"):
        storage.write_bytes(uri, b"x")
    with pytest.raises(StorageError, match=r"no such bucket 'tc-no-such-bucket'"):
        storage.list_files(f"{scheme}://tc-no-such-bucket/x")


def test_tile_list_from_object_store(bucket):
    uri = storage.join(bucket, "tiles.csv")
    storage.write_text(uri, TILES_CSV)
    tiles = parse_tile_list(storage.read_text(uri), source=uri)
    assert [t.tile_id for t in tiles] == ["r0_c0", "r0_c1"]


@pytest.fixture(scope="module", params=["s3", "gs"])
def remote_bundle(request) -> str:
    base = request.getfixturevalue(f"{request.param}_bucket")
    uri = f"{base}/rts-demo"
    upload_tree(DEMO_BUNDLE, uri)
    return uri


def test_load_bundle_from_object_store(remote_bundle):
    local = load_bundle(DEMO_BUNDLE)
    bundle = load_bundle(remote_bundle)
    assert bundle.uri == remote_bundle
    assert bundle.digest == local.digest
    assert bundle.golden_max_error == local.golden_max_error


def test_tampered_remote_bundle_is_refused_as_locally(remote_bundle, tmp_path):
    name = "model.pt2"
    data = bytearray((DEMO_BUNDLE / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    local = tmp_path / "rts-demo"
    shutil.copytree(DEMO_BUNDLE, local)
    (local / name).write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError) as local_err:
        load_bundle(local)

    tampered = remote_bundle + "-tampered"
    upload_tree(local, tampered)
    with pytest.raises(BundleIntegrityError) as remote_err:
        load_bundle(tampered)
    assert str(remote_err.value) == str(local_err.value).replace(str(local), tampered)


def test_s3_bad_credentials_are_a_clear_error(s3_bucket, monkeypatch):
    """moto checks signatures once auth is on: an unknown key is a 403 from the server."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    uri = f"{s3_bucket}/secret.bin"
    storage.write_bytes(uri, b"x")
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    clear_fs_caches()
    try:
        with pytest.raises(StorageError) as err:
            storage.read_bytes(uri)
    finally:
        clear_fs_caches()
    message = str(err.value)
    assert message.startswith(f"{uri}: access denied")
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_ENDPOINT_URL" in message
    assert "Traceback" not in message


def test_s3_missing_credentials_are_a_clear_error(s3_bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    clear_fs_caches()
    uri = f"{s3_bucket}/any.bin"
    try:
        with pytest.raises(StorageError) as err:
            storage.read_bytes(uri)
    finally:
        clear_fs_caches()
    assert str(err.value).startswith(f"{uri}: ")
    assert "credentials" in str(err.value)


def test_gcs_forbidden_is_a_clear_error(gcs_server, monkeypatch):
    """The emulator has no auth; a stand-in endpoint answers every request with 403."""
    import http.server
    import threading

    class Forbidden(http.server.BaseHTTPRequestHandler):
        def _deny(self) -> None:
            body = (
                b'{"error": {"code": 403, "message": "caller does not have storage.objects.get"}}'
            )
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = _deny

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    clear_fs_caches()
    uri = "gs://locked/data.bin"
    try:
        with pytest.raises(StorageError) as err:
            storage.read_bytes(uri)
    finally:
        server.shutdown()
        server.server_close()
        clear_fs_caches()
    message = str(err.value)
    assert message.startswith(f"{uri}: access denied")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message and "STORAGE_EMULATOR_HOST" in message
