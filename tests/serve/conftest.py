"""The bundles the service tests serve: models/rts-demo and a tiny classifier, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify.classify_support import ChannelMeans, classifier_draft, stats_bytes
from tilecast.bundle import Bundle, create_bundle, load_bundle

REPO = Path(__file__).resolve().parents[2]
RTS_DEMO = REPO / "models" / "rts-demo"


@pytest.fixture(scope="session")
def rts_bundle() -> Bundle:
    return load_bundle(str(RTS_DEMO))


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve-classifier") / "bundle"
    create_bundle(ChannelMeans(), classifier_draft(), stats_bytes=stats_bytes(), out=out)
    return out


@pytest.fixture(scope="session")
def classifier(classifier_dir: Path) -> Bundle:
    return load_bundle(str(classifier_dir))
