"""Basemap window reads from object stores: GDAL's /vsis3/ and /vsigs/ against fsspec files.

    python bench/remote_reads.py [--basemap demo_out/basemap] [--tiles demo_out/tiles.csv]
                                 [--scales 1.0 0.5] [--workers 2] [--repeats 3]

Starts moto's S3 server and the GCS emulator on 127.0.0.1 (as the tests do), uploads the
basemap to each, and reads every scale context of every tile of the tile list through
``open_basemap`` (the job's reader: block cache, ``--workers`` threads), once per way:

- ``gdal``: rasterio opens the ``s3://`` / ``gs://`` URL through GDAL's network file systems
  (``tilecast.io.vsi.gdal_options``);
- ``fsspec``: rasterio reads an s3fs / gcsfs file object (``TILECAST_REMOTE_READS=fsspec``).

Each pass starts cold: the basemap is uploaded under a fresh prefix (GDAL's and fsspec's caches
are keyed by URL) and opened anew. Prints, per store and way, the median of ``--repeats`` timed
passes (tiles/s, decoded MB/s), and from one more pass through a counting proxy the HTTP
requests, the bytes the store sent and the tiles/s when each request waits ``--latency-ms``
first (as on a cloud bucket); then the ratios of the two ways per store. The stores run
in this process, so absolute figures are a loopback server's, not a cloud bucket's; the request
counts and bytes are what a real bucket would see.
The demo basemap is made first when missing (scripts/make_demo_basemap.py).
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CountingProxy:
    """A reverse proxy on 127.0.0.1 that counts requests and response body bytes, and holds
    each request ``latency_s`` before forwarding it (a cloud bucket's time to first byte)."""

    def __init__(self, upstream: str, *, latency_s: float = 0.0) -> None:
        self.upstream = urlsplit(upstream)
        self.latency_s = latency_s
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                time.sleep(proxy.latency_s)
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                with proxy._lock:
                    proxy.requests += 1
                    proxy.bytes += len(data)
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def reset(self) -> None:
        with self._lock:
            self.requests = self.bytes = 0


def start_servers() -> dict[str, str]:
    """moto and the GCS emulator on free ports; the environment set as a user would."""
    from gcp_storage_emulator.server import create_server
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_S3_ENDPOINT"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
    )
    s3_port = free_port()
    ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False).start()
    gs_port = free_port()
    create_server("127.0.0.1", gs_port, in_memory=True).start()
    return {"s3": f"http://127.0.0.1:{s3_port}", "gs": f"http://127.0.0.1:{gs_port}"}


def point_at(scheme: str, endpoint: str) -> None:
    """Point every client at ``endpoint`` the usual way (GDAL's settings derive from it)."""
    import fsspec

    if scheme == "s3":
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    for proto in ("s3", "gcs"):
        fsspec.get_filesystem_class(proto).clear_instance_cache()


def upload(basemap: Path, uri: str) -> None:
    from tilecast.io import storage

    for path in sorted(basemap.glob("*.tif")):
        storage.write_bytes(storage.join(uri, path.name), path.read_bytes())


def read_pass(uri: str, tiles: list, *, scales: list[float], workers: int) -> tuple[float, int]:
    """Open the basemap and read every context of every tile; (seconds, bytes decoded)."""
    from tilecast.apps.rts.plan import make_plan
    from tilecast.io.basemap import open_basemap

    start = time.perf_counter()
    with open_basemap(uri) as basemap:
        tile_size = round((tiles[0].maxx - tiles[0].minx) / basemap.grid.res_x)
        plan = make_plan(tiles, grid=basemap.grid, scales=scales, tile_size=tile_size)
        windows = [view.context for item in plan.items for view in item.views]
        with ThreadPoolExecutor(workers) as pool:
            nbytes = sum(a.nbytes for a, _ in pool.map(basemap.read, windows))
    return time.perf_counter() - start, nbytes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--basemap", type=Path, default=REPO / "demo_out" / "basemap")
    parser.add_argument("--tiles", type=Path, default=REPO / "demo_out" / "tiles.csv")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=30.0,
        help="delay per request in the counting pass (a bucket's time to first byte)",
    )
    args = parser.parse_args()
    if not args.basemap.is_dir():
        out = args.basemap.parent
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "make_demo_basemap.py"), "--out", str(out)],
            check=True,
        )

    import fsspec

    from tilecast.apps.rts.tilelist import parse_tile_list

    tiles = parse_tile_list(args.tiles.read_text(), source=str(args.tiles))
    endpoints = start_servers()
    size_mb = sum(p.stat().st_size for p in args.basemap.glob("*.tif")) / 1e6
    print(
        f"basemap {args.basemap} ({size_mb:.1f} MB in {len(list(args.basemap.glob('*.tif')))} "
        f"quads), {len(tiles)} tiles, scales {args.scales}, {args.workers} threads"
    )
    ways = ["gdal", "fsspec"]
    rates: dict[tuple[str, ...], float] = {}
    for scheme, endpoint in endpoints.items():
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        point_at(scheme, endpoint)
        fsspec.filesystem("gcs" if scheme == "gs" else "s3").mkdir(bucket)
        timings: dict[str, list[tuple[float, int]]] = {w: [] for w in ways}
        for _ in range(args.repeats):
            for way in ways:  # alternate, so load from other processes hits both alike
                os.environ["TILECAST_REMOTE_READS"] = way
                uri = f"{scheme}://{bucket}/{uuid.uuid4().hex[:8]}"
                upload(args.basemap, uri)
                timings[way].append(read_pass(uri, tiles, scales=args.scales, workers=args.workers))
        proxy = CountingProxy(endpoint, latency_s=args.latency_ms / 1000)
        for way in ways:
            os.environ["TILECAST_REMOTE_READS"] = way
            point_at(scheme, endpoint)
            uri = f"{scheme}://{bucket}/{uuid.uuid4().hex[:8]}"
            upload(args.basemap, uri)
            point_at(scheme, proxy.url)
            proxy.reset()
            slow, _ = read_pass(uri, tiles, scales=args.scales, workers=args.workers)
            requests, sent = proxy.requests, proxy.bytes
            rates[scheme, way, "latency"] = len(tiles) / slow
            seconds = statistics.median(t for t, _ in timings[way])
            decoded = timings[way][0][1]
            rates[scheme, way] = len(tiles) / seconds
            print(
                f"{scheme:2} {way:6}  {len(tiles) / seconds:7.1f} tiles/s  "
                f"{decoded / seconds / 1e6:7.1f} MB/s decoded  {seconds:6.2f} s (median of "
                f"{args.repeats})  {requests:5d} requests  {sent / 1e6:6.1f} MB sent by the store  "
                f"{len(tiles) / slow:6.1f} tiles/s at {args.latency_ms:g} ms per request"
            )
        proxy.server.shutdown()
        point_at(scheme, endpoint)
    for scheme in endpoints:
        ratio = rates[scheme, "gdal"] / rates[scheme, "fsspec"]
        slow = rates[scheme, "gdal", "latency"] / rates[scheme, "fsspec", "latency"]
        print(
            f"{scheme:2} gdal / fsspec tiles/s: {ratio:.2f}x direct, "
            f"{slow:.2f}x at {args.latency_ms:g} ms per request"
        )
    sys.stdout.flush()
    os._exit(0)  # the servers' threads are not daemons


if __name__ == "__main__":
    main()
