"""Load test of `tilecast serve` on 127.0.0.1: concurrent clients, every answer checked.

    python bench/serve_load.py [--bundle models/rts-demo] [--clients 16] [--requests 8]
                               [--images 32] [--size 64] [--format tif|png]
                               [--max-batch 8] [--max-wait-ms 3] [--queue 64]
                               [--time-limit 300] [--in-process]

Starts `tilecast serve BUNDLE` on a free port of 127.0.0.1 in its own process (``--in-process``:
uvicorn in a thread of this one), reads the model's input from GET /contract, makes
``--images`` distinct images of seeded noise (georeferenced GeoTIFFs, ``--size`` px square) and
asks for each one's answer alone, one request at a time: the expected answers. Then
``--clients`` clients send ``--requests`` requests each, all at once, client c's j-th request
carrying image (c * requests + j) % images, and every 200 reply must equal its own image's
expected answer byte for byte (a classification row names its image, ``?name=image-<i>``, so
even two images with the same label cannot be mixed up unseen). 503 replies (the queue is
full) are counted apart, not retried; any other status or a transport failure is an error.
Bounded: no request starts after ``--time-limit`` seconds. Prints p50/p99 latency of the
answered requests and the throughput; exit status 1 on any error or mismatch.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from affine import Affine

from tilecast.io.raster import Georef, encode_gtiff
from tilecast.serve.settings import TOKEN_VARIABLE

REPO = Path(__file__).resolve().parents[1]
GEOREF = Georef(crs="EPSG:3413", transform=Affine(3.0, 0, -2_000_000.0, 0, -3.0, 500_000.0))


@dataclass
class LoadReport:
    clients: int
    requests: int  # sent
    answered: int = 0  # 200 and equal to the expected answer
    refused: int = 0  # 503, as designed
    mismatches: int = 0  # 200 but another answer than the image's own
    errors: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)  # of the answered requests
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.mismatches

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        return 1000 * float(np.percentile(self.latencies_s, q))

    @property
    def throughput(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def lines(self) -> list[str]:
        return [
            f"load       {self.clients} clients, {self.requests} requests in {self.elapsed_s:.2f} s",
            f"answers    {self.answered} equal to their image's answer alone, {self.mismatches} "
            f"mismatched, {self.refused} refused (503), {len(self.errors)} errors",
            f"latency    p50 {self.percentile_ms(50):.1f} ms, p99 {self.percentile_ms(99):.1f} ms",
            f"throughput {self.throughput:.1f} answers/s",
        ]


def make_images(contract: dict[str, Any], *, count: int, size: int, seed: int = 0) -> list[bytes]:
    """``count`` distinct GeoTIFFs of seeded noise that fit the contract's input."""
    spec = contract["input"]
    channels, dtype = spec["channels"], np.dtype(spec["dtype"])
    high = min(int(spec["input_range"][1]), int(np.iinfo(dtype).max)) if dtype.kind == "u" else 1
    order = spec["channel_order"] if len(spec["channel_order"]) == channels else None
    images = []
    for i in range(count):
        rng = np.random.default_rng(seed + i)
        pixels = rng.integers(1, high + 1, (channels, size, size)).astype(dtype)
        images.append(encode_gtiff(pixels, georef=GEOREF, nodata=None, channel_order=order))
    return images


def image_params(i: int, fmt: str | None) -> dict[str, str]:
    return {"name": f"image-{i}", **({"format": fmt} if fmt else {})}


def expected_answers(
    url: str, images: Sequence[bytes], *, fmt: str | None, headers: dict[str, str]
) -> list[bytes]:
    """Each image's answer alone (one request at a time)."""
    answers = []
    with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
        for i, data in enumerate(images):
            reply = client.post("/predict", content=data, params=image_params(i, fmt))
            reply.raise_for_status()
            answers.append(reply.content)
    return answers


def run_load(
    url: str,
    images: Sequence[bytes],
    expected: Sequence[bytes],
    *,
    clients: int,
    requests: int,
    fmt: str | None = None,
    headers: dict[str, str] | None = None,
    time_limit_s: float = 300.0,
) -> LoadReport:
    """``clients`` concurrent clients, ``requests`` each; every answer checked (module doc)."""
    report = LoadReport(clients=clients, requests=0)
    lock = threading.Lock()
    start_line = threading.Barrier(clients)
    deadline = time.monotonic() + time_limit_s

    def client_run(c: int) -> None:
        timeout = httpx.Timeout(min(120.0, time_limit_s))
        with httpx.Client(base_url=url, timeout=timeout, headers=headers or {}) as client:
            start_line.wait()
            for j in range(requests):
                if time.monotonic() > deadline:
                    return
                i = (c * requests + j) % len(images)
                t0 = time.perf_counter()
                try:
                    reply = client.post("/predict", content=images[i], params=image_params(i, fmt))
                except httpx.HTTPError as exc:
                    with lock:
                        report.requests += 1
                        report.errors.append(f"client {c} request {j}: {exc!r}")
                    continue
                took = time.perf_counter() - t0
                with lock:
                    report.requests += 1
                    if reply.status_code == 503:
                        report.refused += 1
                    elif reply.status_code != 200:
                        report.errors.append(f"image {i}: {reply.status_code} {reply.text[:200]}")
                    elif reply.content != expected[i]:
                        report.mismatches += 1
                    else:
                        report.answered += 1
                        report.latencies_s.append(took)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_run, range(clients)))
    report.elapsed_s = time.perf_counter() - start
    return report


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(bundle: str, settings: list[str], *, in_process: bool) -> Iterator[str]:
    """The service's URL while it runs: `tilecast serve` in a process, or uvicorn in a thread."""
    if in_process:
        from tilecast.serve import BackgroundServer, ServeSettings, create_app

        names = [a.removeprefix("--").replace("-", "_") for a in settings[::2]]
        values = [float(v) if "." in v else int(v) for v in settings[1::2]]
        app = create_app(bundle, settings=ServeSettings(**dict(zip(names, values, strict=True))))
        with BackgroundServer(app) as server:
            yield server.url
        return
    port = free_port()
    tilecast = str(Path(sys.executable).parent / "tilecast")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [tilecast, "serve", bundle, "--port", str(port), *settings],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            headers = token_headers()
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"tilecast serve stopped:\n{log.read().decode()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/health", headers=headers, timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("tilecast serve did not start within 120 s")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def token_headers() -> dict[str, str]:
    token = os.environ.get(TOKEN_VARIABLE)
    return {"Authorization": f"Bearer {token}"} if token else {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=str(REPO / "models" / "rts-demo"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=8, help="per client")
    parser.add_argument("--images", type=int, default=32, help="distinct images")
    parser.add_argument("--size", type=int, default=64, help="image side, px")
    parser.add_argument("--format", default=None, help="tif or png (segmentation)")
    parser.add_argument("--max-batch", default="8")
    parser.add_argument("--max-wait-ms", default="3.0")
    parser.add_argument("--queue", default="64")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds")
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args(argv)

    settings = ["--max-batch", args.max_batch, "--max-wait-ms", args.max_wait_ms]
    settings += ["--queue", args.queue]
    headers = token_headers()
    with serving(args.bundle, settings, in_process=args.in_process) as url:
        contract = httpx.get(f"{url}/contract", headers=headers, timeout=30).json()["contract"]
        images = make_images(contract, count=args.images, size=args.size)
        expected = expected_answers(url, images, fmt=args.format, headers=headers)
        report = run_load(
            url,
            images,
            expected,
            clients=args.clients,
            requests=args.requests,
            fmt=args.format,
            headers=headers,
            time_limit_s=args.time_limit,
        )
    print(
        f"bundle     {args.bundle} ({contract['name']} {contract['version']}, {contract['task']})"
    )
    print(
        f"service    max batch {args.max_batch}, max wait {args.max_wait_ms} ms, queue "
        f"{args.queue}; {args.images} distinct {args.size} x {args.size} px images"
        f"{' (in process)' if args.in_process else ''}"
    )
    for line in report.lines():
        print(line)
    for error in report.errors[:10]:
        print(f"error      {error}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
