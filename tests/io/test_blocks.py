"""The block cache and the handle pool on their own."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from basemap_scenes import quad_pixels, quad_transform, write_quad

from tilecast.grid.windows import Window
from tilecast.io.blocks import (
    Block,
    BlockCache,
    HandlePool,
    StatsCounter,
    block_shape_for,
)


def block(nbytes_data: int = 100) -> Block:
    return Block(data=np.zeros(nbytes_data, np.uint8), valid=np.zeros(0, bool))


def test_lru_evicts_least_recently_used_by_bytes() -> None:
    stats = StatsCounter()
    cache = BlockCache(300, stats)
    for key in "abc":
        cache.get(key, block)
    cache.get("a", lambda: pytest.fail("a is cached"))  # a becomes most recent
    cache.get("d", block)  # 400 bytes > 300: evict b (least recent)
    assert len(cache) == 3 and cache.nbytes == 300
    decoded = []
    cache.get("b", lambda: decoded.append("b") or block())
    assert decoded == ["b"]  # b was gone; c is the next victim
    s = stats.snapshot()
    assert (s.cache_hits, s.cache_misses, s.blocks_evicted) == (1, 5, 2)


def test_a_block_bigger_than_the_budget_is_returned_not_kept() -> None:
    cache = BlockCache(10, StatsCounter())
    got = cache.get("big", block)
    assert got.nbytes == 100 and len(cache) == 0 and cache.nbytes == 0


def test_racing_threads_decode_a_block_once() -> None:
    stats = StatsCounter()
    cache = BlockCache(1 << 20, stats)
    calls = []
    gate = threading.Event()

    def slow() -> Block:
        calls.append(1)
        gate.wait(5)
        return block()

    got: list[Block] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", slow))) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 8 and all(g is got[0] for g in got)
    s = stats.snapshot()
    assert s.cache_misses == 1 and s.cache_hits == 7


def test_a_failed_decode_reaches_every_waiter_and_is_retried() -> None:
    cache = BlockCache(1 << 20, StatsCounter())
    gate = threading.Event()

    def boom() -> Block:
        gate.wait(5)
        raise OSError("disk gone")

    errors: list[BaseException] = []

    def ask() -> None:
        try:
            cache.get("k", boom)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join()
    assert len(errors) == 3
    assert cache.get("k", block).nbytes == 100  # not poisoned


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="-1 is given"):
        BlockCache(-1, StatsCounter())


@pytest.mark.parametrize(
    ("shapes", "tiled", "expected"),
    [
        ([(512, 512)], True, (512, 512)),
        ([(256, 256)], True, (256, 256)),
        ([(128, 128)], True, (256, 256)),
        ([(16, 64)], True, (256, 256)),
        ([(200, 300)], True, (400, 300)),
        ([(1, 900)], False, (512, 512)),
    ],
)
def test_block_shape(shapes: list[tuple[int, int]], tiled: bool, expected: tuple[int, int]) -> None:
    assert block_shape_for(shapes, tiled=tiled) == expected


def test_handle_pool_reuses_and_caps_idle_handles(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        fp = Window(0, 0, 8, 8)
        path = tmp_path / f"{i}.tif"
        write_quad(path, quad_pixels(i, fp, margin=0), transform=quad_transform(fp), tile=None)
        paths.append(str(path))
    pool = HandlePool(max_idle=2)
    with pool.lend(paths[0]) as a, pool.lend(paths[0]) as b:
        assert a is not b  # two borrowers at once get two handles
    with pool.lend(paths[0]) as c:
        assert c in (a, b)
    assert pool.opened == 2
    with pool.lend(paths[1]), pool.lend(paths[2]):
        pass
    assert sum(h.closed for h in (a, b)) >= 1  # idle cap 2: the oldest idle handle was closed
    pool.close()
    assert a.closed and b.closed


def test_shared_handles_serialise_one_file(tmp_path: Path) -> None:
    fp = Window(0, 0, 8, 8)
    path = str(tmp_path / "s.tif")
    write_quad(path, quad_pixels(0, fp, margin=0), transform=quad_transform(fp), tile=None)
    pool = HandlePool(mode="shared")
    with pool.lend(path) as a:
        pass
    with pool.lend(path) as b:
        assert a is b
    pool.close()
    assert a.closed
    with pytest.raises(ValueError, match="'pool' or 'shared'"):
        HandlePool(mode="threads")  # type: ignore[arg-type]
