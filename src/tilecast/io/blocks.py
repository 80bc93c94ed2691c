"""Block-level reading of raster sources through a shared, byte-budgeted LRU cache.

A *source* is one raster file (a GeoTIFF/COG quad, a single basemap raster or a VRT). Its pixels
are read in aligned *blocks*: the file's internal tile (enlarged by whole tiles to at least
256 px a side) when it is tiled, else 512 x 512. A decoded block holds the band data and a
validity mask; invalid pixels already hold the fill value in every band, so assembling a window
is plain copying.

The :class:`BlockCache` is shared by every source of a basemap. It is thread-safe, evicts the
least recently used blocks once their bytes pass the budget, and decodes each block once even
when several threads ask for it at the same moment: the first asker decodes, the others wait on
its future.

rasterio dataset objects are not thread-safe. A :class:`HandlePool` lends open datasets to one
thread at a time. ``"pool"`` (the default): a thread takes an idle handle of that file or opens
a new one and gives it back after the read, so several threads decode blocks of the same quad
at once (GDAL releases the GIL while decoding); idle handles beyond a cap are closed, least
recently used first. ``"shared"``: one handle per file, every read of that file holds its lock.
Measured with ``tests/io/bench_handles.py`` on the 2-core dev box (steady state, 512-px DEFLATE
RGB blocks): with one core free the two are equal within 2% (~240 blocks/s); when two threads
decode the same file and the second core is free, the pool decodes 1.2-1.5x faster
(343 vs 230 and 443 vs 366 blocks/s). Reads spread over different quads parallelise in both.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from rasterio.errors import RasterioError
from rasterio.windows import Window as RioWindow

from tilecast.errors import StorageError
from tilecast.io.bands import BandLayout, band_layout, gdal_error_text, read_window
from tilecast.io.vsi import env_for, open_raster

HandleMode = Literal["pool", "shared"]

DEFAULT_BLOCK = 512  # block side for sources without internal tiles (striped TIFFs, VRTs)
MIN_BLOCK = 256  # internal tiles smaller than this are grouped into larger aligned blocks


@dataclass(frozen=True)
class ReadStats:
    """Counters of one basemap since it was opened or since ``reset_stats()``.

    ``pixels_decoded`` sums height x width of every decoded block (once per block, whatever the
    band count); blocks at the right and bottom edge of a source count their clipped size.
    Direct (uncached) reads count the blocks their window touches, as GDAL would decode them
    with an empty block cache of its own.
    """

    blocks_decoded: int = 0
    pixels_decoded: int = 0
    window_reads: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    blocks_evicted: int = 0


class StatsCounter:
    """Thread-safe mutable counters behind :class:`ReadStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(ReadStats.__dataclass_fields__, 0)

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                self._values[name] += value

    def snapshot(self) -> ReadStats:
        with self._lock:
            return ReadStats(**self._values)

    def reset(self) -> None:
        with self._lock:
            for name in self._values:
                self._values[name] = 0


@dataclass(frozen=True, eq=False)
class Block:
    """One decoded block: ``data`` (bands, h, w) with the fill value where ``valid`` (h, w) is False."""

    data: np.ndarray
    valid: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes + self.valid.nbytes)


class BlockCache:
    """LRU cache of decoded blocks bounded by bytes; thread-safe; one decode per block."""

    def __init__(self, budget_bytes: int, stats: StatsCounter) -> None:
        if budget_bytes < 0:
            raise ValueError(f"block cache budget must be >= 0 bytes, {budget_bytes} is given")
        self.budget_bytes = budget_bytes
        self._stats = stats
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Block] = OrderedDict()
        self._pending: dict[Hashable, Future[Block]] = {}
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: Hashable, load: Callable[[], Block]) -> Block:
        """The block under ``key``, decoded by ``load()`` unless cached or being decoded."""
        with self._lock:
            block = self._entries.get(key)
            if block is not None:
                self._entries.move_to_end(key)
                self._stats.add(cache_hits=1)
                return block
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = self._pending[key] = Future()
                self._stats.add(cache_misses=1)
            else:  # another thread decodes it right now: wait, do not decode again
                self._stats.add(cache_hits=1)
        assert future is not None
        if not owner:
            return future.result()
        try:
            block = load()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._entries[key] = block
            self._bytes += block.nbytes
            evicted = 0
            while self._bytes > self.budget_bytes and self._entries:
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.nbytes
                evicted += 1
            if evicted:
                self._stats.add(blocks_evicted=evicted)
        future.set_result(block)
        return block

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class HandlePool:
    """Open rasterio datasets lent to one thread at a time, shared by all sources of a basemap.

    ``mode="pool"``: a borrower takes an idle handle of the file or opens one; at most
    ``max_idle`` idle handles stay open (least recently returned closed first). ``mode="shared"``:
    one handle per file, every read of that file holds its lock.
    """

    def __init__(self, *, mode: HandleMode = "pool", max_idle: int = 256) -> None:
        if mode not in ("pool", "shared"):
            raise ValueError(f"handle mode must be 'pool' or 'shared', {mode!r} is given")
        self.mode = mode
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._closed = False
        self._ticket = itertools.count()
        self._idle: OrderedDict[int, tuple[str, Any]] = OrderedDict()  # ticket -> (path, handle)
        self._idle_by_path: dict[str, list[int]] = {}
        self._shared: dict[str, tuple[threading.Lock, Any]] = {}
        self._opened = 0

    @property
    def opened(self) -> int:
        """How many datasets were opened so far (a measure of handle churn)."""
        return self._opened

    def _open(self, path: str) -> Any:
        try:
            handle = open_raster(path)
        except RasterioError as exc:
            raise StorageError(f"{path}: cannot open as a raster ({gdal_error_text(exc)})") from exc
        with self._lock:
            self._opened += 1
        return handle

    @contextlib.contextmanager
    def lend(self, path: str) -> Iterator[Any]:
        if self.mode == "shared":
            with self._lock:
                if self._closed:
                    raise StorageError(f"{path}: the basemap is closed")
                entry = self._shared.get(path)
                if entry is None:
                    entry = self._shared[path] = (threading.Lock(), None)
            lock = entry[0]
            with lock:
                handle = self._shared[path][1]
                if handle is None:
                    handle = self._open(path)
                    with self._lock:
                        self._shared[path] = (lock, handle)
                with env_for(path):
                    yield handle
            return
        with self._lock:
            if self._closed:
                raise StorageError(f"{path}: the basemap is closed")
            tickets = self._idle_by_path.get(path)
            handle = self._idle.pop(tickets.pop())[1] if tickets else None
        if handle is None:
            handle = self._open(path)
        try:
            with env_for(path):
                yield handle
        finally:
            self._give_back(path, handle)

    def _give_back(self, path: str, handle: Any) -> None:
        to_close = []
        with self._lock:
            if self._closed:
                to_close.append(handle)
            else:
                ticket = next(self._ticket)
                self._idle[ticket] = (path, handle)
                self._idle_by_path.setdefault(path, []).append(ticket)
                while len(self._idle) > self.max_idle:
                    old_ticket, (old_path, old_handle) = self._idle.popitem(last=False)
                    self._idle_by_path[old_path].remove(old_ticket)
                    to_close.append(old_handle)
        for h in to_close:
            h.close()

    def close(self) -> None:
        """Close every idle handle; handles lent out now are closed when given back."""
        with self._lock:
            self._closed = True
            handles = [h for _, h in self._idle.values()]
            handles += [h for _, h in self._shared.values() if h is not None]
            self._idle.clear()
            self._idle_by_path.clear()
            self._shared.clear()
        for h in handles:
            h.close()


def block_shape_for(block_shapes: list[tuple[int, int]], *, tiled: bool) -> tuple[int, int]:
    """Cache block (height, width): the internal tile, grown by whole tiles to >= MIN_BLOCK."""
    if not tiled or not block_shapes:
        return DEFAULT_BLOCK, DEFAULT_BLOCK
    th, tw = block_shapes[0]
    return th * math.ceil(MIN_BLOCK / th), tw * math.ceil(MIN_BLOCK / tw)


@dataclass(frozen=True)
class SourceInfo:
    """What is known about one raster file after opening it once."""

    path: str
    width: int
    height: int
    layout: BandLayout  # data bands, alpha band, GDAL's mask rule (tilecast.io.bands)
    dtype: np.dtype
    nodata: float | None
    block_height: int
    block_width: int

    @property
    def bands(self) -> tuple[int, ...]:
        """1-based indexes of the bands read as data (an alpha band is not one)."""
        return self.layout.data_bands


def describe_source(src: Any, path: str, *, channel_order: str | None = None) -> SourceInfo:
    """Inspect an open rasterio dataset (bands and their roles, blocks, mask rule)."""
    layout = band_layout(src, channel_order=channel_order, where=path)
    tiled = bool(src.profile.get("tiled", False)) and src.driver in ("GTiff", "COG")
    bh, bw = block_shape_for(list(src.block_shapes), tiled=tiled)
    return SourceInfo(
        path=path,
        width=src.width,
        height=src.height,
        layout=layout,
        dtype=np.dtype(src.dtypes[layout.data_bands[0] - 1]),
        nodata=src.nodata,
        block_height=bh,
        block_width=bw,
    )


def fill_value_for(nodata: float | None, dtype: np.dtype) -> Any:
    """The value invalid pixels read as: the nodata value, or 0 without one."""
    return dtype.type(0 if nodata is None else nodata)


def read_pixels(
    pool: HandlePool, info: SourceInfo, *, row: int, col: int, height: int, width: int
) -> Block:
    """Decode a window that lies inside the source; invalid pixels get the fill value.

    Validity is GDAL's (:mod:`tilecast.io.bands`): the internal mask, else the alpha band,
    else "every band NoData".
    """
    rio_window = RioWindow(col, row, width, height)
    with pool.lend(info.path) as src:
        data, valid = read_window(
            src, info.layout, nodata=info.nodata, window=rio_window, where=info.path
        )
    if not valid.all():
        data[:, ~valid] = fill_value_for(info.nodata, info.dtype)
    return Block(data=data, valid=valid)
