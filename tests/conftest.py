"""Fixtures shared by the whole suite: tiny models and bundles made in a temp dir."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

# the object-store servers (moto, gcp-storage-emulator) for any test that asks for them
from object_stores import bucket, gcs_server, gs_bucket, s3_bucket, s3_server, session_env  # noqa: F401
from support import rgb_draft, stats_bytes, tiny_unet
from tilecast.bundle import create_bundle
from tilecast.bundle.contract import default_steps

# `make test` runs two pytest-xdist workers (CI has two cores): each computes with one thread,
# and so do the processes it starts (two workers of two threads would oversubscribe the cores)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow cases first (in their order): xdist hands out whole files
    (``--dist loadfile``), and a long file handed out last would run alone at the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


MakeBundle = Callable[..., Path]


@pytest.fixture(scope="session")
def make_bundle(tmp_path_factory: pytest.TempPathFactory) -> MakeBundle:
    """Create (once per distinct argument set) a bundle of a tiny U-Net; returns its directory."""
    cache: dict[tuple, Path] = {}

    def make(
        model_format: str = "export", baked: tuple[str, ...] = ("scale_values", "normalize")
    ) -> Path:
        key = (model_format, baked)
        if key not in cache:
            out = tmp_path_factory.mktemp("bundle") / f"{model_format}-{'-'.join(baked) or 'host'}"
            create_bundle(
                tiny_unet(),
                rgb_draft(preprocessing=default_steps(baked=baked)),
                stats_bytes=stats_bytes(),
                out=out,
                model_format=model_format,  # type: ignore[arg-type]
                architecture="unet",
            )
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture
def bundle_copy(make_bundle: MakeBundle, tmp_path: Path) -> Callable[..., Path]:
    """A private copy of a cached bundle that a test may tamper with."""

    def copy(*args: object, **kwargs: object) -> Path:
        src = make_bundle(*args, **kwargs)
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return copy
