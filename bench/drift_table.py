"""The input-drift verdicts on the demo inputs and on the ways users receive them wrong.

    python bench/drift_table.py [--bundle models/rts-demo] [--side 1024]

For the demo basemap's scene, held-out demo scenes, and the held-out scene stored BGR without a
colour interpretation, hazy (x0.4 + 150), scaled to 0-1 as float32, as 0-10000 reflectance,
and darker (x0.6), it prints each channel's mean and its distance from training in training
standard deviations, and the flags with their reasons: the table in the issue-14 note.
"""

from __future__ import annotations

import argparse

import numpy as np

from tilecast.bundle import load_bundle
from tilecast.demo.scene import generate_scene
from tilecast.drift import DriftMonitor

BASEMAP_SEED = 20261122  # scripts/make_demo_basemap.py's scene (DEMO_SEED)
HELD_OUT = (3001, 3002, 7, 11)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="models/rts-demo")
    parser.add_argument("--side", type=int, default=1024)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    held = generate_scene(seed=HELD_OUT[0], height=args.side, width=args.side)
    basemap = generate_scene(seed=BASEMAP_SEED, height=args.side, width=args.side)
    cases: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("demo basemap scene", basemap.image, basemap.valid)
    ]
    for seed in HELD_OUT:
        scene = generate_scene(seed=seed, height=args.side, width=args.side)
        cases.append((f"held-out scene {seed}", scene.image, scene.valid))
    image, valid = held.image, held.valid
    cases += [
        ("BGR stored, read as RGB", np.ascontiguousarray(image[::-1]), valid),
        ("hazy (x0.4 + 150)", (image * 0.4 + 150).astype(np.uint8), valid),
        ("darker (x0.6)", (image * 0.6).astype(np.uint8), valid),
        ("0-1 float32", image.astype(np.float32) / 255, valid),
        ("0-10000 reflectance", image.astype(np.float32) * (10000 / 255), valid),
    ]
    print(f"{'input':28} {'means (z)':40} flags")
    for name, pixels, mask in cases:
        monitor = DriftMonitor.for_bundle(bundle)
        monitor.observe(pixels, mask, channel_order="RGB")
        verdict = monitor.verdict()
        means = ", ".join(f"{r.channel} {r.mean:.3g} ({r.z:+.1f})" for r in verdict.rows)
        flags = "; ".join(f"[{f.kind}] {f.reason}" for f in verdict.flags) or "none"
        print(f"{name:28} {means:40} {flags}")


if __name__ == "__main__":
    main()
