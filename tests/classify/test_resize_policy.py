"""The resize policy: pure geometry, its execution on tensors, and the contract running it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tilecast.bundle.load import load_bundle
from tilecast.bundle.runtime import infer, prepare
from tilecast.errors import InputError
from tilecast.prep import Size, fixed_size_plan, resize_image, shorter_side_plan


def test_shorter_side_plan_follows_torchvision_rounding() -> None:
    # torchvision Resize(256) + CenterCrop(224) on a 500 x 300 image: 426 x 256, offsets 16/101
    plan = shorter_side_plan(Size(300, 500), shorter_side=256, crop=Size(224, 224))
    assert plan.resized == Size(256, 426)
    assert plan.offset_yx == (16, 101)
    assert plan.output == Size(224, 224)
    portrait = shorter_side_plan(Size(500, 300), shorter_side=256, crop=Size(224, 224))
    assert portrait.resized == Size(426, 256)
    assert portrait.offset_yx == (101, 16)


def test_fixed_plan_and_a_crop_that_does_not_fit() -> None:
    plan = fixed_size_plan(Size(50, 70), Size(32, 32))
    assert (plan.resized, plan.offset_yx, plan.resamples, plan.crops) == (
        Size(32, 32),
        (0, 0),
        True,
        False,
    )
    assert not fixed_size_plan(Size(32, 32), Size(32, 32)).resamples
    with pytest.raises(InputError, match="does not fit"):
        shorter_side_plan(Size(300, 500), shorter_side=200, crop=Size(224, 224))


def test_centre_crop_keeps_the_centre_columns() -> None:
    """Pixel values are their column index: the crop's columns show where it was taken."""
    columns = torch.arange(80, dtype=torch.float32).expand(1, 40, 80).clone()
    plan = shorter_side_plan(Size(40, 80), shorter_side=32, crop=Size(32, 32))
    assert plan.resized == Size(32, 64) and plan.offset_yx == (0, 16)
    out = resize_image(columns, plan, interpolation="nearest", antialias=False)
    assert out.shape == (1, 32, 32)
    # torch "nearest": resized column j reads source column floor(j * 80 / 64)
    expected = torch.tensor([np.floor((j + 16) * 80 / 64) for j in range(32)], dtype=torch.float32)
    assert torch.equal(out[0, 0], expected)


def test_resize_image_refuses_an_image_of_another_size() -> None:
    plan = fixed_size_plan(Size(50, 70), Size(32, 32))
    with pytest.raises(InputError, match="70x50"):
        resize_image(torch.zeros(3, 60, 60), plan, interpolation="bilinear", antialias=False)


def test_a_wrong_size_input_is_resized_by_the_declared_policy(make_classifier) -> None:
    """Quiet defect: a 70 x 50 image reaching a model trained at 32 x 32. The contract's
    executor resizes it (bilinear, as declared) and the model only ever sees 32 x 32."""
    bundle = load_bundle(make_classifier())
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(3, 50, 70), dtype=np.uint8)
    prepared = prepare(bundle.contract, bundle.stats, image, channel_order="RGB")
    assert tuple(prepared.array.shape) == (3, 32, 32)
    reference = F.interpolate(
        torch.from_numpy(image).float()[None], size=(32, 32), mode="bilinear", align_corners=False
    )[0]
    assert torch.allclose(prepared.array, reference, atol=1e-4)

    seen: list[tuple[int, ...]] = []

    def model(batch: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(batch.shape))
        return bundle.model(batch)

    result = infer(bundle.contract, bundle.stats, model, image, channel_order="RGB")
    assert seen == [(1, 3, 32, 32)]
    assert result.probabilities.shape == (3,)


def test_shorter_side_policy_runs_in_the_contract(make_classifier) -> None:
    policy = {
        "policy": "shorter_side_crop",
        "shorter_side": 40,
        "crop": [32, 32],
        "interpolation": "bilinear",
        "antialias": True,
    }
    bundle = load_bundle(make_classifier(resize=policy))
    image = np.zeros((3, 60, 90), np.uint8)
    prepared = prepare(bundle.contract, bundle.stats, image, channel_order="RGB")
    assert tuple(prepared.array.shape) == (3, 32, 32)
