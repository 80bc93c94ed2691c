"""The dynamic batcher on its own: groups by key, at most max_batch, a bounded queue."""

from __future__ import annotations

import threading

import pytest

from tilecast.serve.batcher import DynamicBatcher
from tilecast.serve.errors import QueueFullError


def test_requests_waiting_together_run_in_groups_of_one_key():
    calls: list[list[str]] = []
    gate, started = threading.Event(), threading.Event()

    def run(items):
        started.set()
        gate.wait(10)
        calls.append(list(items))
        return [f"{item}!" for item in items]

    batcher = DynamicBatcher(run, max_batch=4, max_wait_ms=0, queue_size=16)
    try:
        first = batcher.submit("a", "a0")  # taken alone while the rest queue behind the gate
        assert started.wait(10)
        items = [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3")]
        futures = [batcher.submit(key, item) for key, item in items]
        gate.set()
        assert first.result(10) == "a0!"
        assert [f.result(10) for f in futures] == [f"{item}!" for _, item in items]
    finally:
        batcher.close()
    # at most 4 taken at once, grouped by key in arrival order; the fifth comes after
    assert calls == [["a0"], ["a1", "a2"], ["b1", "b2"], ["a3"]]
    assert batcher.stats.largest_group == 2 and batcher.stats.requests == 6


def test_a_full_queue_refuses_instead_of_growing():
    gate = threading.Event()
    started = threading.Event()

    def run(items):
        started.set()
        gate.wait(10)
        return list(items)

    batcher = DynamicBatcher(run, max_batch=1, max_wait_ms=0, queue_size=2)
    try:
        running = batcher.submit(0, "running")
        assert started.wait(10)  # the worker holds one; two may wait
        waiting = [batcher.submit(0, "w1"), batcher.submit(0, "w2")]
        with pytest.raises(QueueFullError, match="2 requests are already waiting"):
            batcher.submit(0, "refused")
        assert batcher.stats.refused == 1
        gate.set()
        assert [f.result(10) for f in (running, *waiting)] == ["running", "w1", "w2"]
    finally:
        batcher.close()


def test_a_failing_group_fails_its_requests_and_the_worker_goes_on():
    def run(items):
        if "bad" in items:
            raise RuntimeError("model failed")
        return list(items)

    batcher = DynamicBatcher(run, max_batch=1, max_wait_ms=0, queue_size=4)
    try:
        bad = batcher.submit(0, "bad")
        with pytest.raises(RuntimeError, match="model failed"):
            bad.result(10)
        assert batcher.submit(0, "good").result(10) == "good"
    finally:
        batcher.close()


def test_a_request_cancelled_while_waiting_is_dropped():
    gate, started, seen = threading.Event(), threading.Event(), []

    def run(items):
        started.set()
        gate.wait(10)
        seen.extend(items)
        return list(items)

    batcher = DynamicBatcher(run, max_batch=4, max_wait_ms=0, queue_size=4)
    try:
        first = batcher.submit(0, "first")
        assert started.wait(10)
        gone, kept = batcher.submit(0, "gone"), batcher.submit(0, "kept")
        assert gone.cancel()
        gate.set()
        assert (first.result(10), kept.result(10)) == ("first", "kept")
    finally:
        batcher.close()
    assert seen == ["first", "kept"]
