"""Builders shared by tests: tiny models, contract drafts, statistics files."""

from __future__ import annotations

import json

import torch

from tilecast.bundle import ContractDraft
from tilecast.bundle.contract import InputSpec, Postprocessing
from tilecast.models import build_model

STATS = {"mean": [101.5, 112.25, 95.0], "std": [31.0, 29.5, 33.0], "dataset_version": "test-v1"}


def tiny_unet(seed: int = 0, **params: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    defaults = {"in_channels": 3, "classes": 1, "depth": 5, "widths": [4, 8, 8, 16, 16, 16]}
    return build_model("unet", {**defaults, **params})


def rgb_draft(**changes: object) -> ContractDraft:
    fields: dict[str, object] = {
        "name": "tiny",
        "version": "0.0.1",
        "input": InputSpec(
            channels=3,
            channel_order="RGB",
            dtype="uint8",
            value_scaling="raw",
            input_range=(0, 255),
        ),
        "postprocessing": Postprocessing(activation="sigmoid", labels=("bg", "fg"), threshold=0.5),
    }
    fields.update(changes)
    return ContractDraft(**fields)  # type: ignore[arg-type]


def stats_bytes(**changes: object) -> bytes:
    return json.dumps({**STATS, **changes}).encode()
