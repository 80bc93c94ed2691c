"""The ResNet-encoder U-Net++ (``smp_unetplusplus``): smp's state_dict layout, shapes, export.

The layout numbers below were measured from real ``segmentation_models_pytorch`` 0.6.0 (torch
2.14.1); ``tests/compat`` (``make test-compat``) compares key sets and outputs with real smp.
"""

import io
import json

import pytest
import torch
from torch.export import Dim, export

from tilecast.errors import ContractError
from tilecast.models import ResNetUnet, ResNetUnetPlusPlus, build_model
from tilecast.models.unetplusplus import node_name

# smp.UnetPlusPlus(encoder_name=..., encoder_weights=None), smp 0.6.0: state_dict entries and
# parameter count.
SMP_LAYOUT = {
    "resnet18": (254, 15_970_449),
    "resnet34": (350, 26_078_609),
    "resnet50": (452, 48_985_745),
}
# The first conv of each decoder node, smp 0.6.0, default decoder_channels, in smp's order.
SMP_RESNET34_NODES = {
    "x_0_0": (256, 768),  # upsampled layer4 (512) + layer3 (256)
    "x_0_1": (128, 512),  # x_0_0 (256) + layer2 (128) + x_1_1 (128)
    "x_1_1": (128, 384),  # upsampled layer3 (256) + layer2 (128)
    "x_0_2": (64, 320),
    "x_1_2": (64, 256),
    "x_2_2": (64, 192),
    "x_0_3": (32, 320),  # x_0_2 (64) + the stem and x_1_3, x_2_3, x_3_3 (64 each)
    "x_1_3": (64, 256),
    "x_2_3": (64, 192),
    "x_3_3": (64, 128),
    "x_0_4": (16, 32),  # the final block: no skip
}
SMP_RESNET50_NODES = {"x_0_0": (256, 3072), "x_1_1": (512, 1536), "x_1_3": (64, 448)}
SMALL_DECODER = (32, 16, 16, 8, 8)


def small(seed: int = 0, **params: object) -> ResNetUnetPlusPlus:
    torch.manual_seed(seed)
    defaults: dict[str, object] = {"encoder_name": "resnet18", "decoder_channels": SMALL_DECODER}
    return ResNetUnetPlusPlus(**{**defaults, **params}).eval()  # type: ignore[arg-type]


@pytest.mark.parametrize("encoder", sorted(SMP_LAYOUT))
def test_state_dict_size_and_parameter_count_are_smps(encoder):
    model = ResNetUnetPlusPlus(encoder_name=encoder)
    entries, parameters = SMP_LAYOUT[encoder]
    assert len(model.state_dict()) == entries
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_decoder_nodes_have_smps_names_order_and_widths():
    state = ResNetUnetPlusPlus(encoder_name="resnet34").state_dict()
    firsts = [k for k in state if k.startswith("decoder.") and k.endswith(".conv1.0.weight")]
    assert [k.split(".")[2] for k in firsts] == list(SMP_RESNET34_NODES)
    for node, (cout, cin) in SMP_RESNET34_NODES.items():
        assert tuple(state[f"decoder.blocks.{node}.conv1.0.weight"].shape) == (cout, cin, 3, 3)
        assert tuple(state[f"decoder.blocks.{node}.conv2.1.running_var"].shape) == (cout,)
    resnet50 = ResNetUnetPlusPlus(encoder_name="resnet50").state_dict()
    for node, (cout, cin) in SMP_RESNET50_NODES.items():
        assert tuple(resnet50[f"decoder.blocks.{node}.conv1.0.weight"].shape) == (cout, cin, 3, 3)


def test_encoder_and_head_are_the_unets():
    plus = ResNetUnetPlusPlus(encoder_name="resnet34", in_channels=4, classes=2).state_dict()
    unet = ResNetUnet(encoder_name="resnet34", in_channels=4, classes=2).state_dict()
    shared = {k: v.shape for k, v in unet.items() if not k.startswith("decoder.")}
    assert {k: v.shape for k, v in plus.items() if not k.startswith("decoder.")} == shared


def test_node_names_follow_smps_numbering():
    # X[level, j]: level 0 is the stem's resolution, j the node's place along its level
    assert node_name(3, 1, 5) == "x_0_0"  # the deepest level with nodes has one
    assert node_name(0, 1, 5) == "x_3_3"  # the first node next to the stem
    assert node_name(0, 4, 5) == "x_0_3"  # the stem level's last node
    # encoder_depth 3 (smp 0.6.0: x_0_0 takes layer2 + layer1, x_1_1 layer1 + the stem, x_0_1
    # x_0_0 + the stem + x_1_1): levels 0 and 1 have nodes, level 1 only X[1, 1]
    assert node_name(1, 1, 3) == "x_0_0"
    assert node_name(0, 1, 3) == "x_1_1"
    assert node_name(0, 2, 3) == "x_0_1"


@pytest.mark.parametrize(("level", "j"), [(1, 2), (2, 1), (0, 0), (0, 3), (-1, 1)])
def test_node_name_refuses_nodes_the_decoder_does_not_have(level, j):
    with pytest.raises(ValueError, match=rf"X\[{level}, {j}\] is asked for"):
        node_name(level, j, 3)


def test_shallow_encoders_keep_unused_stages_and_have_fewer_nodes():
    model = ResNetUnetPlusPlus(
        encoder_name="resnet18", encoder_depth=3, decoder_channels=(16, 8, 8)
    )
    keys = model.state_dict().keys()
    assert "encoder.layer4.1.bn2.weight" in keys
    nodes = sorted({k.split(".")[2] for k in keys if k.startswith("decoder.")})
    assert nodes == ["x_0_0", "x_0_1", "x_0_2", "x_1_1"]


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_alignment_and_output_shape(depth):
    model = small(encoder_depth=depth, decoder_channels=SMALL_DECODER[:depth], classes=3)
    assert model.alignment == 2**depth
    with torch.no_grad():
        out = model(torch.randn(2, 3, 2 * model.alignment, 3 * model.alignment))
    assert out.shape == (2, 3, 2 * model.alignment, 3 * model.alignment)
    assert out.dtype == torch.float32


def test_every_node_feeds_the_output():
    """Dense skips: a gradient reaches every decoder conv (none is built and then ignored)."""
    model = small().train()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    starved = [
        name
        for name, p in model.decoder.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not starved


def test_own_state_dict_loads_strictly_and_reproduces_outputs():
    source, target = small(seed=1), small(seed=2)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(source(x), target(x))
        result = target.load_state_dict(source.state_dict(), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        torch.testing.assert_close(target(x), source(x), atol=0, rtol=0)


def test_build_model_by_name_and_rebuild_from_json_config():
    model = build_model("smp_unetplusplus", {"encoder_name": "resnet18", "classes": 2})
    assert isinstance(model, ResNetUnetPlusPlus)
    assert type(model).smp_class == "UnetPlusPlus"
    config = json.loads(json.dumps(model.config))
    assert config["decoder_channels"] == [256, 128, 64, 32, 16]
    rebuilt = build_model("smp_unetplusplus", config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"encoder_name": "resnet101"}, r"encoder_name must be one of .*'resnet101' is given"),
        ({"encoder_depth": 2}, r"encoder_depth must be one of 3, 4, 5; 2"),
        ({"encoder_depth": 4}, r"decoder_channels must have encoder_depth = 4 entries, 5"),
        ({"classes": 0}, r"classes must be a positive integer"),
    ],
)
def test_bad_parameters_name_the_parameter(params, message):
    with pytest.raises(ContractError, match=r"architecture 'smp_unetplusplus'.*" + message):
        build_model("smp_unetplusplus", params)


@pytest.fixture(scope="module")
def exported():
    """Exported with a dynamic batch, height and width, as bundles are, saved and loaded."""
    model = small(seed=4)
    dims = {
        "x": {
            0: Dim("batch", min=1, max=64),
            2: 32 * Dim("h", min=1, max=64),
            3: 32 * Dim("w", min=1, max=64),
        }
    }
    with torch.no_grad(), torch.fx.experimental._config.patch(backed_size_oblivious=True):
        program = export(model, (torch.randn(2, 3, 64, 96),), dynamic_shapes=dims)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    buf.seek(0)
    return model, torch.export.load(buf).module()


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (3, 3, 128, 64)])
def test_exported_program_matches_eager_at_dynamic_sizes(exported, shape):
    model, program = exported
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(program(x), expected, atol=1e-5, rtol=1e-5)
