"""The drift rules, each on statistics built to trip it (and the demo scenes, which must not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tilecast.bundle import load_bundle
from tilecast.demo.scene import generate_scene
from tilecast.drift import DriftMonitor, TrainingReference, judge

DEMO = Path(__file__).resolve().parents[2] / "models" / "rts-demo"


@pytest.fixture(scope="module")
def demo():
    return load_bundle(DEMO)


def _verdict(bundle, image, valid=None, order="RGB"):
    monitor = DriftMonitor.for_bundle(bundle)
    monitor.observe(image, valid, channel_order=order)
    return monitor.verdict()


@pytest.mark.parametrize(
    ("seed", "side"), [(20261122, 2048), (3001, 768), (3002, 768), (7, 768), (11, 768)]
)  # the demo basemap's scene (whole), held-out scenes
def test_held_out_demo_scenes_are_like_training(demo, seed, side):
    scene = generate_scene(seed=seed, height=side, width=side)
    verdict = _verdict(demo, scene.image, scene.valid)
    assert verdict.judged and verdict.flags == (), verdict.summary()


@pytest.fixture(scope="module")
def scene():
    return generate_scene(seed=3002, height=768, width=768)


def test_swapped_bands(demo, scene):
    verdict = _verdict(demo, scene.image[::-1].copy(), scene.valid)
    assert [f.kind for f in verdict.flags] == ["swapped"]
    assert set(verdict.flags[0].channels) == {"R", "B"}
    # named correctly, the same pixels are fine
    assert _verdict(demo, scene.image[::-1].copy(), scene.valid, order="BGR").flags == ()


def test_haze_and_low_contrast(demo, scene):
    hazy = (scene.image * 0.3 + 160).astype(np.uint8)
    kinds = {f.kind for f in _verdict(demo, hazy, scene.valid).flags}
    assert kinds == {"mean", "contrast"}


def test_another_scaling_names_the_likely_factor(demo, scene):
    verdict = _verdict(demo, scene.image.astype(np.float32) * (10000 / 255), scene.valid)
    assert [f.kind for f in verdict.flags] == ["scaling"]
    assert "0-10000 reflectance where the model was trained on 0-255" in verdict.flags[0].reason


def test_quantiles_from_the_statistics_file_flag_values_out_of_range(demo, scene):
    base = TrainingReference.from_bundle(demo)
    narrow = TrainingReference(
        channel_order=base.channel_order,
        mean=base.mean,
        std=base.std,
        input_range=base.input_range,
        dataset_version=base.dataset_version,
        quantiles={0.01: (100.0, 100.0, 75.0), 0.99: (110.0, 112.0, 85.0)},
    )
    monitor = DriftMonitor(narrow)
    monitor.observe(scene.image, scene.valid, channel_order="RGB")
    verdict = judge(monitor.pooled(), narrow)
    assert {f.kind for f in verdict.flags} == {"range"}
    assert "outside training's 1st-99th percentile" in verdict.flags[0].reason


def test_too_few_pixels_are_not_judged(demo, scene):
    verdict = _verdict(demo, scene.image[:, :20, :20].copy() * 0 + 250)
    assert not verdict.judged and verdict.flags == ()
    assert "too few" in verdict.summary()


def test_fail_mode_raises_with_the_reason(demo, scene):
    from tilecast.errors import InputDriftError

    monitor = DriftMonitor.for_bundle(demo, mode="fail")
    monitor.observe(scene.image[::-1].copy(), scene.valid, channel_order="RGB")
    with pytest.raises(InputDriftError, match="bands look swapped"):
        monitor.enforce("scene.tif")


def _echo_bundle(tmp_path, stats: dict):
    import json

    from drift.drift_support import echo_bundle

    stats_bytes = json.dumps(stats).encode()
    return echo_bundle(tmp_path / "bundle", stats=stats_bytes, dtype="uint8", value_scaling="unit")


def test_bundle_create_keeps_the_training_quantiles_in_input_units(tmp_path):
    stats = {
        "mean": [0.4, 0.4, 0.3],
        "std": [0.1, 0.1, 0.06],
        "dataset_version": "v1",
        "quantiles": {"0.01": [0.1, 0.12, 0.1], "0.99": [0.7, 0.7, 0.5]},
    }
    reference = TrainingReference.from_bundle(load_bundle(_echo_bundle(tmp_path, stats)))
    assert reference.mean == pytest.approx((102.0, 102.0, 76.5))  # stats in 0-1, input 0-255
    assert reference.quantiles[0.99] == pytest.approx((178.5, 178.5, 127.5))


@pytest.mark.parametrize(
    ("quantiles", "message"),
    [
        ({"0.01": [1, 2]}, "must hold 3 values"),
        ({"1.5": [1, 2, 3]}, "a quantile level must be a number in"),
        ({"0.01": [5, 5, 5], "0.99": [4, 6, 6]}, "is below a lower level's"),
    ],
)
def test_bad_quantiles_are_refused_naming_the_problem(tmp_path, quantiles, message):
    from tilecast.errors import BundleError

    stats = {"mean": [0.4] * 3, "std": [0.1] * 3, "dataset_version": "v1", "quantiles": quantiles}
    with pytest.raises(BundleError, match=message):
        _echo_bundle(tmp_path, stats)
