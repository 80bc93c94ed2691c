"""The thaw-slump job's YAML config, validated at the edge (unknown keys and bad values refused).

```yaml
model:     {bundle: models/rts-demo, device: auto, precision: fp32, compile: false}
input:     {basemap: <raster | VRT | folder of COG quads>, basemap_version: 2025-Q3}
output:    {path: <dir>, tile_encoding: uint16}   # uint16 | uint8 | float32
inference: {tile_size: 512, scales: [1.0, 0.5], tta: minimal, batch_size: 64,
            threshold: null, workers: 4}
```
"""

from __future__ import annotations

import os
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tilecast.apps.rts.tile_codec import TileEncodingName
from tilecast.errors import ContractError
from tilecast.grid import context_size
from tilecast.io import storage


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(_Section):
    bundle: str = Field(min_length=1)
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False
    channels_last: bool = True


class InputSection(_Section):
    basemap: str = Field(min_length=1)
    basemap_version: str = Field(min_length=1)
    tile_list_crs: str = Field(
        default="EPSG:3413", description="CRS of the tile list's bboxes; must be the basemap's"
    )
    block_cache_mb: int = Field(
        default=1024,
        ge=0,
        description="decoded basemap blocks kept in memory (LRU); overlapping tiles and scale "
        "contexts decode each block once while it is held",
    )
    channel_order: str | None = Field(
        default=None,
        description="every band of the basemap in order (RGB, BGR, RGBA: A is the alpha band, "
        "a validity mask); default: the bands' colour interpretation",
    )
    input_drift: Literal["warn", "fail"] = Field(
        default="warn",
        description="basemap pixels unlike the training data (another scaling, swapped bands, "
        "means far off, low contrast): warn in the log, run log and report, or fail the run",
    )


class OutputSection(_Section):
    path: str = Field(min_length=1)
    tile_encoding: TileEncodingName = Field(
        default="uint16",
        description="how tile files store the probability: uint16 (resolution 1/26000), uint8 "
        "(1/254) or float32 (exact, about 6x larger); see apps/rts/tile_codec.py",
    )


class InferenceSection(_Section):
    tile_size: int = Field(default=512, ge=32)
    scales: tuple[float, ...] = Field(default=(1.0, 0.5), min_length=1)
    tta: Literal["none", "minimal", "standard"] = "minimal"
    batch_size: int = Field(default=64, ge=1)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="threads that read, prepare and write tiles (on the CPU: that carry tiles "
        "end to end); default: the machine's cores",
    )
    pipeline: Literal["auto", "per_tile", "batched"] = Field(
        default="auto",
        description="per_tile: each worker carries a tile end to end (CPU); batched: workers "
        "read and write, one thread feeds the device with batches from many tiles (GPU); "
        "auto: per_tile on the CPU, batched on a GPU",
    )
    micro_batch: int | None = Field(
        default=None, ge=1, description="samples per model call; null = 1 on CPU, batch_size on GPU"
    )
    checkpoint_every: int = Field(
        default=200, ge=1, description="tiles between run-log checkpoints"
    )
    prefetch_tiles: int = Field(default=0, ge=0, description="tiles read ahead; 0 = 2 batches")

    @field_validator("scales")
    @classmethod
    def _scales_valid(cls, scales: tuple[float, ...]) -> tuple[float, ...]:
        if len(set(scales)) != len(scales):
            raise ValueError(f"scales must be distinct, got {list(scales)}")
        for s in scales:
            if not 0 < s <= 1:
                raise ValueError(f"each scale must be in (0, 1], got {s}")
        return scales


class ProductsSection(_Section):
    """What runs after the tiles: per-region mosaics, polygons, the QC report.

    They run at the end of ``rts run`` unless switched off, and never at the end of a shard
    (``--shard``): merge after every shard has finished, with ``tilecast rts products``.
    """

    merge: bool = True
    vectorize: bool = True
    report: bool = True
    merge_strategy: Literal["auto", "memory", "streaming"] = "auto"
    memory_budget_mb: int = Field(default=2048, ge=16)
    min_area_m2: float = Field(default=0.0, ge=0.0, description="drop smaller polygons (precision)")


class RtsConfig(_Section):
    model: ModelSection
    input: InputSection
    output: OutputSection
    inference: InferenceSection = InferenceSection()
    products: ProductsSection = ProductsSection()

    def check_scales(self) -> None:
        for s in self.inference.scales:
            context_size(self.inference.tile_size, s)  # raises with the reason


def _path_of(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def parse_config(text: str, *, source: str = "<config>") -> RtsConfig:
    """Parse YAML text; errors name the key path (``inference.batch_size``) and the value."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ContractError(f"{source}: expected a mapping with model, input, output, inference")
    try:
        config = RtsConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_path_of(e['loc'])}: {e['msg']}"
            + (
                f" (got {e['input']!r})"
                if e["type"] != "missing" and not isinstance(e["input"], dict)
                else ""
            )
            for e in exc.errors()
        )
        raise ContractError(f"{source}: {problems}") from exc
    try:
        config.check_scales()
    except Exception as exc:
        raise ContractError(f"{source}: inference.scales: {exc}") from exc
    return config


def load_config(uri: str | os.PathLike[str]) -> RtsConfig:
    return parse_config(storage.read_text(uri), source=os.fspath(uri))
