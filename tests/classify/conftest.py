"""Tiny classification bundles, made once per session per distinct draft."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from classify_support import ChannelMeans, classifier_draft, stats_bytes

from tilecast.bundle import create_bundle

MakeClassifier = Callable[..., Path]


@pytest.fixture(scope="session")
def make_classifier(tmp_path_factory: pytest.TempPathFactory) -> MakeClassifier:
    """``make_classifier(**draft_changes)`` -> the directory of a ChannelMeans bundle."""
    cache: dict[str, Path] = {}

    def make(**changes: object) -> Path:
        key = repr(sorted(changes.items()))
        if key not in cache:
            out = tmp_path_factory.mktemp("classifier") / "bundle"
            create_bundle(
                ChannelMeans(), classifier_draft(**changes), stats_bytes=stats_bytes(), out=out
            )
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture
def classifier_copy(make_classifier: MakeClassifier, tmp_path: Path) -> Callable[..., Path]:
    """A private copy of a cached classification bundle that a test may tamper with."""

    def copy(**changes: object) -> Path:
        dst = tmp_path / "bundle"
        shutil.copytree(make_classifier(**changes), dst)
        return dst

    return copy
