import json

import pytest
import torch
from torch import nn

from tilecast.errors import ContractError
from tilecast.models import UNet, build_model
from tilecast.models.unet import group_count


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
def test_alignment_is_two_to_the_depth(depth):
    model = UNet(depth=depth, base_width=4)
    assert model.alignment == 2**depth


@pytest.mark.parametrize(
    ("depth", "shape"), [(2, (2, 3, 4, 12)), (3, (1, 3, 24, 40)), (5, (2, 3, 64, 32))]
)
def test_forward_keeps_aligned_spatial_shape(depth, shape):
    model = UNet(depth=depth, base_width=4, classes=2).eval()
    with torch.no_grad():
        out = model(torch.randn(*shape))
    assert out.shape == (shape[0], 2, shape[2], shape[3])
    assert out.dtype == torch.float32


def test_default_widths_double_per_stage():
    model = UNet(depth=3, base_width=8)
    assert model.config["widths"] == [8, 16, 32, 64]


def test_explicit_widths_must_have_depth_plus_one_entries():
    with pytest.raises(ContractError, match=r"widths must have depth \+ 1 = 4 entries, 3"):
        UNet(depth=3, widths=[8, 16, 32])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"depth": 0}, "depth"),
        ({"in_channels": -1}, "in_channels"),
        ({"classes": 0}, "classes"),
        ({"norm": "layer"}, "norm"),
        ({"widths": [8, 0, 16, 16, 16, 16]}, r"widths\[1\]"),
        ({"min_group_channels": True}, "min_group_channels"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ContractError, match=name):
        UNet(**kwargs)


@pytest.mark.parametrize(
    ("channels", "groups"), [(4, 1), (15, 1), (16, 1), (32, 2), (48, 3), (100, 5), (256, 16)]
)
def test_group_count_keeps_at_least_min_channels_per_group(channels, groups):
    assert group_count(channels, 16) == groups
    assert channels % groups == 0


def test_every_groupnorm_has_groups_of_at_least_16_channels():
    model = UNet(depth=4, widths=[8, 16, 48, 100, 256])
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert norms
    for norm in norms:
        per_group = norm.num_channels // norm.num_groups
        assert norm.num_channels % norm.num_groups == 0
        assert per_group >= 16 or norm.num_groups == 1, (norm.num_channels, norm.num_groups)


def test_batchnorm_option_uses_batchnorm():
    model = UNet(depth=2, base_width=4, norm="batch")
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, nn.GroupNorm) for m in model.modules())


def test_one_at_a_time_equals_batched_with_groupnorm():
    torch.manual_seed(0)
    model = UNet(depth=3, widths=[8, 16, 32, 64]).eval()
    batch = torch.randn(4, 3, 32, 48)
    with torch.no_grad():
        together = model(batch)
        alone = torch.cat([model(batch[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=0)


def test_config_is_json_and_rebuilds_the_same_model():
    model = UNet(depth=3, widths=[4, 8, 16, 32], classes=2, norm="batch")
    config = json.loads(json.dumps(model.config))
    rebuilt = build_model("unet", config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    rebuilt.load_state_dict(model.state_dict())


def test_veernet_is_a_grayscale_groupnorm_unet():
    model = build_model("veernet", {})
    assert isinstance(model, UNet)
    assert model.config["in_channels"] == 1
    assert model.config["norm"] == "group"
    assert model.alignment == 32
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 32, 64)).shape == (1, 1, 32, 64)
