"""Fixtures for benchmarks: a model that costs almost nothing, and the demo basemap.

``near_free_bundle(out)`` writes (once) a tilecast bundle whose model is one 1x1 convolution
(3 -> 1 channel, fixed weights) behind the demo bundle's exact input contract, so a benchmark
run with it measures everything around the model: reading, the contract's host steps,
batching, writing. ``demo_basemap(out)`` makes the synthetic demo basemap when it is missing.

    from near_free import demo_basemap, near_free_bundle   # from a script in bench/

    bundle = near_free_bundle(Path("build/bench/near-free"))
    basemap, tiles = demo_basemap(Path("demo_out"))
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import torch

from tilecast.apps.rts.tilelist import parse_tile_list
from tilecast.bundle import Contract, ContractDraft, create_bundle, load_bundle
from tilecast.errors import TilecastError
from tilecast.grid import Tile

REPO = Path(__file__).resolve().parents[1]
DEMO_BUNDLE = Path("models/rts-demo")
NEAR_FREE_NAME = "near-free-1x1"
NEAR_FREE_VERSION = "2"  # 1: nn.Conv2d; 2: the same convolution as a weighted sum
#: The 1x1 convolution's fixed weights (R, G, B) and bias: any fixed values would do.
WEIGHTS = (0.5, -0.25, 0.25)
BIAS = 0.0


class NearFree(torch.nn.Module):
    """A 1x1 convolution, 3 channels -> 1 logit, with :data:`WEIGHTS` and :data:`BIAS`.

    Written as its weighted channel sum rather than ``nn.Conv2d``: the same arithmetic, but
    oneDNN's convolution kernel for 3 -> 1 channels on a contiguous (NCHW) batch costs tens
    of times more than the sum (0.5 s for 8 tiles of 512 px on 2 cores, where channels-last
    input takes 15 ms), which would make the model anything but free on a caller that does
    not feed channels-last. The sum costs about the same in either memory layout.
    """

    alignment = 32  # what the demo U-Net needs, so the padding step does the same work

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(WEIGHTS).view(1, 3, 1, 1))
        self.bias = torch.nn.Parameter(torch.tensor([BIAS]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=1, keepdim=True) + self.bias


def _read_contract(bundle: Path) -> Contract:
    return Contract.model_validate_json((bundle / "contract.json").read_bytes())


def _same_contract(made: Contract, like: Contract) -> bool:
    """Whether ``made`` is the near-free model behind ``like``'s input contract."""
    return (
        made.name == NEAR_FREE_NAME
        and made.version == NEAR_FREE_VERSION
        and made.input == like.input
        and made.sentinels == like.sentinels
        and made.preprocessing == like.preprocessing
        and made.alignment == like.alignment
        and made.postprocessing == like.postprocessing
        and made.stats == like.stats
    )


def _reusable(out: Path, like: Contract) -> bool:
    """Whether ``out`` holds a bundle that loads (every check a job makes) and is like ``like``."""
    if not (out / "manifest.json").exists():
        return False
    try:
        made = load_bundle(out)
    except TilecastError:
        return False
    return _same_contract(made.contract, like)


def near_free_bundle(out: Path, *, like: Path = DEMO_BUNDLE) -> Path:
    """The near-free bundle at ``out``, created when missing, invalid or not like ``like``.

    Its contract copies ``like``'s: channels, order, dtype, value scaling and input range,
    sentinels, the preprocessing steps and where each runs, the alignment and pad mode, the
    statistics file byte for byte, and the postprocessing (activation, labels, threshold).
    Only the model differs (:class:`NearFree`). Returns ``out``.
    """
    like_contract = _read_contract(like)
    if _reusable(out, like_contract):
        return out
    draft = ContractDraft(
        name=NEAR_FREE_NAME,
        version=NEAR_FREE_VERSION,
        task=like_contract.task,
        input=like_contract.input,
        sentinels=like_contract.sentinels,
        preprocessing=like_contract.preprocessing,
        pad_mode=like_contract.alignment.pad_mode,
        postprocessing=like_contract.postprocessing,
    )
    stats = (like / like_contract.stats.file).read_bytes()
    create_bundle(NearFree(), draft, stats_bytes=stats, out=out, overwrite=True)
    return out


class DemoBasemap(NamedTuple):
    basemap: Path  # the folder of COG quads
    tiles: list[Tile]  # parsed from tiles.csv beside it


def demo_basemap(out: Path = Path("demo_out")) -> DemoBasemap:
    """The demo basemap under ``out``, made by ``scripts/make_demo_basemap.py`` when missing.

    ``out/basemap`` is a 2048 x 2048 px synthetic scene in four 1024 px COG quads;
    ``out/tiles.csv`` lists its 64 tiles of 512 px every 256 px (the last row and column reach
    256 px past the raster, read as NoData).
    """
    if not (out / "basemap").exists():
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "make_demo_basemap.py"), "--out", str(out)],
            check=True,
        )
    tile_list = out / "tiles.csv"
    return DemoBasemap(
        basemap=out / "basemap",
        tiles=parse_tile_list(tile_list.read_text(), source=str(tile_list)),
    )
