"""Make a tilecast bundle of an smp-layout ResNet-34 U-Net with RANDOM weights.

FOR THROUGHPUT CHECKS ONLY: the weights are random (the model's own initialisation at a fixed
seed, BatchNorm running statistics left at their initial mean 0 / variance 1), so its
predictions mean nothing. It is not a demo model; it has the size and shape of the thaw-slump
team's production architecture (``smp.Unet(encoder_name="resnet34")``, 24.4 M parameters), so
the tiled job and the benchmark can be timed with realistic compute per tile before a trained
checkpoint is at hand. (Its probability maps vary across an image, roughly half above the
threshold, so merging and polygonising get work too, though not slump-shaped work.)

The bundle: architecture ``smp_unet`` (``tilecast.models.resnet_unet``), encoder resnet34,
3-channel RGB uint8 input read raw (0..255), normalised with ImageNet's per-channel statistics
(on the 0..255 scale), 1 class with a sigmoid and a 0.5 threshold; golden pairs made by the
bundle itself. ``--format export`` writes a ``torch.export`` program (35-40 s on two busy CPU
cores, most of it the export), ``--format state_dict`` writes the weights plus the architecture
record (about 15 s).

    python scripts/make_resnet_unet_bundle.py [--out build/bundles/resnet34-unet-random]
        [--format export|state_dict] [--seed 0] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tilecast.bundle import ContractDraft, create_bundle
from tilecast.bundle.contract import InputSpec, Postprocessing
from tilecast.models import build_model

DEFAULT_OUT = "build/bundles/resnet34-unet-random"
ARCHITECTURE = "smp_unet"
ARCH_PARAMS = {"encoder_name": "resnet34", "in_channels": 3, "classes": 1}
# ImageNet's RGB mean and std on the 0..255 scale: the usual choice for a ResNet encoder.
STATS = {
    "mean": [123.675, 116.28, 103.53],
    "std": [58.395, 57.12, 57.375],
    "dataset_version": "imagenet-statistics-random-weights",
    "bands": ["R", "G", "B"],
    "value_scaling": "raw",
}
DRAFT = ContractDraft(
    name="resnet34-unet-random",
    version="0.0.0",
    input=InputSpec(
        channels=3, channel_order="RGB", dtype="uint8", value_scaling="raw", input_range=(0, 255)
    ),
    postprocessing=Postprocessing(
        activation="sigmoid", labels=("background", "slump"), threshold=0.5
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"bundle directory ({DEFAULT_OUT})")
    parser.add_argument("--format", choices=["export", "state_dict"], default="export")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the random weights")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    args = parser.parse_args()
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    net = build_model(ARCHITECTURE, ARCH_PARAMS)
    bundle = create_bundle(
        net,
        DRAFT,
        stats_bytes=json.dumps(STATS, indent=2).encode(),
        out=args.out,
        model_format=args.format,
        architecture=ARCHITECTURE,
        overwrite=args.overwrite,
    )
    parameters = sum(p.numel() for p in net.parameters())
    print(
        f"bundle     {args.out} ({args.format}, {ARCHITECTURE} {ARCH_PARAMS['encoder_name']}, "
        f"{parameters:,} random parameters, seed {args.seed}, "
        f"{time.perf_counter() - start:.1f} s)"
    )
    print(f"alignment  {bundle.contract.alignment.multiple}; for throughput checks only")


if __name__ == "__main__":
    main()
