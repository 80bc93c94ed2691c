"""The ResNet-encoder U-Net (``smp_unet``): smp's state_dict layout, shapes, export, registry.

The layout numbers below were measured from real ``segmentation_models_pytorch`` 0.6.0 (torch
2.14.1) with ``scripts/check_smp_compat.py make``; that script's ``check`` step also compares
outputs with smp's (identical on CPU).
"""

import io
import json

import pytest
import torch
from torch.export import Dim, export

from tilecast.errors import ContractError
from tilecast.models import ResNetUnet, build_model

# smp.Unet(encoder_name="resnet34", encoder_weights=None, in_channels=3, classes=1), smp 0.6.0.
SMP_RESNET34_PARAMETERS = 24_436_369
SMP_RESNET34_STATE_KEYS = 278
SMP_RESNET34_SHAPES = {
    "encoder.conv1.weight": (64, 3, 7, 7),
    "encoder.bn1.running_var": (64,),
    "encoder.layer1.0.conv1.weight": (64, 64, 3, 3),
    "encoder.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "encoder.layer2.0.downsample.1.weight": (128,),
    "encoder.layer3.5.bn2.num_batches_tracked": (),
    "encoder.layer4.2.conv2.weight": (512, 512, 3, 3),
    "decoder.blocks.0.conv1.0.weight": (256, 768, 3, 3),  # 512 upsampled + 256 skip
    "decoder.blocks.3.conv1.0.weight": (32, 128, 3, 3),  # 64 + the stem's 64
    "decoder.blocks.4.conv1.0.weight": (16, 32, 3, 3),  # no skip
    "decoder.blocks.4.conv2.1.running_mean": (16,),
    "segmentation_head.0.weight": (1, 16, 3, 3),
    "segmentation_head.0.bias": (1,),
}
SMALL_DECODER = (32, 16, 16, 8, 8)  # where the decoder width does not matter


def small_resnet18(seed: int = 0, **params: object) -> ResNetUnet:
    torch.manual_seed(seed)
    defaults: dict[str, object] = {"encoder_name": "resnet18", "decoder_channels": SMALL_DECODER}
    return ResNetUnet(**{**defaults, **params}).eval()  # type: ignore[arg-type]


def test_resnet34_has_smp_key_names_shapes_and_parameter_count():
    model = ResNetUnet(encoder_name="resnet34", in_channels=3, classes=1)
    state = model.state_dict()
    assert len(state) == SMP_RESNET34_STATE_KEYS
    assert sum(p.numel() for p in model.parameters()) == SMP_RESNET34_PARAMETERS
    for key, shape in SMP_RESNET34_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("encoder.fc") for k in state)
    assert "encoder.layer1.0.downsample.0.weight" not in state  # 64 -> 64, stride 1


def test_resnet50_uses_bottlenecks_with_a_projection_in_the_first_stage():
    state = ResNetUnet(encoder_name="resnet50").state_dict()
    assert tuple(state["encoder.layer1.0.conv3.weight"].shape) == (256, 64, 1, 1)
    assert tuple(state["encoder.layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)
    assert tuple(state["encoder.layer4.0.conv2.weight"].shape) == (512, 512, 3, 3)
    assert tuple(state["decoder.blocks.0.conv1.0.weight"].shape) == (256, 2048 + 1024, 3, 3)


def test_shallower_encoder_keeps_the_unused_stages_as_smp_does():
    model = ResNetUnet(encoder_name="resnet18", encoder_depth=3, decoder_channels=(16, 8, 8))
    keys = model.state_dict().keys()
    assert "encoder.layer4.1.bn2.weight" in keys
    assert "decoder.blocks.2.conv2.0.weight" in keys
    assert "decoder.blocks.3.conv1.0.weight" not in keys


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_alignment_is_two_to_the_encoder_depth(depth):
    model = small_resnet18(encoder_depth=depth, decoder_channels=SMALL_DECODER[:depth])
    assert model.alignment == 2**depth
    with torch.no_grad():
        out = model(torch.randn(1, 3, 2 * model.alignment, 3 * model.alignment))
    assert out.shape == (1, 1, 2 * model.alignment, 3 * model.alignment)


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (2, 3, 64, 96), (1, 3, 160, 32)])
def test_output_keeps_aligned_spatial_shape(shape):
    model = small_resnet18(classes=2)
    with torch.no_grad():
        out = model(torch.randn(*shape))
    assert out.shape == (shape[0], 2, shape[2], shape[3])
    assert out.dtype == torch.float32


def test_other_input_channel_counts():
    model = small_resnet18(in_channels=4)
    assert tuple(model.state_dict()["encoder.conv1.weight"].shape) == (64, 4, 7, 7)
    with torch.no_grad():
        assert model(torch.randn(1, 4, 64, 64)).shape == (1, 1, 64, 64)


def test_own_state_dict_loads_strictly_and_reproduces_outputs():
    source, target = small_resnet18(seed=1), small_resnet18(seed=2)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(source(x), target(x))
        result = target.load_state_dict(source.state_dict(), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        torch.testing.assert_close(target(x), source(x), atol=0, rtol=0)


def test_build_model_by_name_and_rebuild_from_json_config():
    model = build_model("smp_unet", {"encoder_name": "resnet18", "in_channels": 3, "classes": 1})
    assert isinstance(model, ResNetUnet)
    assert model.alignment == 32
    config = json.loads(json.dumps(model.config))
    assert config["decoder_channels"] == [256, 128, 64, 32, 16]
    rebuilt = build_model("smp_unet", config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_bad_encoder_name_is_a_contract_error_listing_the_choices():
    with pytest.raises(ContractError, match=r"architecture 'smp_unet'.*encoder_name.*'resnet18'"):
        build_model("smp_unet", {"encoder_name": "resnet101"})
    with pytest.raises(ContractError, match=r"'resnet101' is given"):
        ResNetUnet(encoder_name="resnet101")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"encoder_depth": 6}, r"encoder_depth must be one of 3, 4, 5; 6"),
        ({"encoder_depth": 4}, r"decoder_channels must have encoder_depth = 4 entries, 5"),
        ({"decoder_channels": [256, 128, 0, 32, 16]}, r"decoder_channels\[2\]"),
        ({"decoder_channels": "wide"}, r"decoder_channels must be a sequence"),
        ({"classes": 0}, r"classes must be a positive integer"),
        ({"in_channels": True}, r"in_channels must be a positive integer"),
    ],
)
def test_bad_parameters_name_the_parameter(params, message):
    with pytest.raises(ContractError, match=message):
        build_model("smp_unet", {"encoder_name": "resnet18", **params})


# -- torch.export, as tests/models/test_export.py does for `unet` --------------------------


def dynamic_shapes():
    return {
        "x": {
            0: Dim("batch", min=1, max=1024),
            2: 32 * Dim("h", min=1, max=512),
            3: 32 * Dim("w", min=1, max=512),
        }
    }


@pytest.fixture(scope="module")
def exported():
    """An export under ``backed_size_oblivious``, as ``bundle.formats.export_program`` does
    (so a side of exactly 32, a 1 x 1 bottleneck, is accepted), saved and loaded back."""
    model = small_resnet18()
    with torch.no_grad(), torch.fx.experimental._config.patch(backed_size_oblivious=True):
        program = export(model, (torch.randn(2, 3, 64, 96),), dynamic_shapes=dynamic_shapes())
    buf = io.BytesIO()
    torch.export.save(program, buf)
    buf.seek(0)
    return model, torch.export.load(buf).module()


@pytest.mark.parametrize("shape", [(1, 3, 32, 64), (3, 3, 128, 64), (2, 3, 96, 160)])
def test_exported_program_matches_eager_at_dynamic_sizes(exported, shape):
    model, program = exported
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = model(x)
    got = program(x)
    assert got.shape == (shape[0], 1, shape[2], shape[3])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_exported_program_refuses_misaligned_input(exported):
    _, program = exported
    with pytest.raises((RuntimeError, AssertionError, ValueError)):
        program(torch.randn(1, 3, 64, 80))


def test_untrained_output_varies_across_the_image():
    """He initialisation: random weights give a map, not a constant (for throughput bundles)."""
    model = small_resnet18(seed=3)
    y, x = torch.meshgrid(torch.linspace(-2, 2, 64), torch.linspace(-2, 2, 64), indexing="ij")
    image = torch.stack([x, y, x * y])[None]
    with torch.no_grad():
        probabilities = torch.sigmoid(model(image))
    assert probabilities.std() > 0.05
