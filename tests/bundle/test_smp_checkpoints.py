"""smp models described in a training ``config.yaml``, and training checkpoints in every shape.

segmentation_models_pytorch is not importable in this venv (torchvision cannot import here),
so these bundles are built by tilecast's own ``smp_unet`` / ``smp_unetplusplus``, which load
smp's state_dict keys strictly; ``tests/compat`` (``make test-compat``) checks the layout and
outputs against real smp and builds a bundle through smp itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from support import STATS, stats_bytes
from tilecast.bundle import create_from_training_dir, load_bundle
from tilecast.bundle.checkpoints import load_weights, state_dict_from
from tilecast.bundle.create import read_training_config
from tilecast.bundle.runtime import infer
from tilecast.bundle.smp_config import build_with_smp
from tilecast.cli.main import cli
from tilecast.errors import BundleError, ContractError, TilecastWarning
from tilecast.models import ResNetUnet, ResNetUnetPlusPlus, build_model

SMALL = {"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 8]}
CHECKPOINT_SHAPES = ["bare", "dataparallel", "full", "lightning", "compiled-ddp"]


def trained(architecture: str, seed: int = 0, **params: object) -> torch.nn.Module:
    """tilecast's model with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = build_model(architecture, params)
    with torch.no_grad():
        net.train()
        for _ in range(2):
            net(torch.randn(2, params.get("in_channels", 3), 32, 32))  # type: ignore[arg-type]
    return net.eval()


def checkpoint(state: dict[str, torch.Tensor], shape: str) -> object:
    """``state`` saved the way training code saves it."""
    if shape == "bare":
        return state
    if shape == "dataparallel":
        return {f"module.{k}": v for k, v in state.items()}
    if shape == "full":
        return {"state_dict": state, "epoch": 12, "best_iou": 0.71, "optimizer": {"lr": 1e-3}}
    if shape == "lightning":  # a LightningModule keeping the network in self.model
        lightning = {f"model.{k}": v for k, v in state.items()}
        return {"state_dict": lightning, "epoch": 41, "global_step": 12_300}
    if shape == "compiled-ddp":  # torch.compile(DDP(model)) saved from a training script
        return {"model_state_dict": {f"_orig_mod.module.{k}": v for k, v in state.items()}}
    raise AssertionError(shape)


def smp_layout(
    tmp_path,
    net: torch.nn.Module,
    *,
    smp_model: dict[str, object],
    form: str = "section",
    shape: str = "lightning",
) -> object:
    """A training team's plain layout whose config.yaml describes an smp model in smp's terms,
    at the top level (``form="top"``) or in a ``model:`` section (thaw-slump-segmentation)."""
    src = tmp_path / "train"
    src.mkdir()
    torch.save(checkpoint(net.state_dict(), shape), src / "best_model.pth")
    (src / "normalization_stats.json").write_bytes(stats_bytes())
    config: dict[str, object] = {
        "model_name": "smp-test",
        "model_version": "2.0.0",
        "input": {
            "channel_order": "RGB",
            "dtype": "uint8",
            "value_scaling": "raw",
            "nodata_fill": "mean",
            "input_range": [0, 255],
        },
        "postprocessing": {"activation": "sigmoid", "labels": ["bg", "rts"], "threshold": 0.5},
        "loss_function": "FocalLoss",  # training-only keys are ignored
    }
    if form == "section":
        config["model"] = smp_model
    else:
        config.update(smp_model)
    (src / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return src


def expected_probabilities(net: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """What the contract's steps and the net give for an uint8 RGB image (no padding needed)."""
    mean = torch.tensor(STATS["mean"]).view(3, 1, 1)
    std = torch.tensor(STATS["std"]).view(3, 1, 1)
    x = (torch.from_numpy(image.astype(np.float32)) - mean) / std
    with torch.no_grad():
        return torch.sigmoid(net(x[None]))[0].numpy()


def test_smp_unet_layout_becomes_a_verified_bundle_through_the_cli(tmp_path):
    net = trained("smp_unet", seed=1, **SMALL)
    smp_model = {
        "architecture": "Unet",
        "encoder": "resnet18",  # thaw-slump-segmentation's name for encoder_name
        "encoder_weights": "imagenet",
        "in_channels": 3,
        "classes": 1,
        "encoder_depth": 3,
        "decoder_channels": [32, 16, 8],
    }
    src = smp_layout(tmp_path, net, smp_model=smp_model)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(cli, ["bundle", "create", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out, check_golden=False)  # the CLI checked them before writing
    spec = bundle.contract.model
    assert (spec.format, spec.architecture) == ("export", "smp_unet")
    assert spec.params == {**SMALL, "in_channels": 3, "classes": 1}
    assert bundle.contract.alignment.multiple == 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert "model_built_by" not in manifest["producer"]  # tilecast's implementation built it
    image = np.random.default_rng(0).integers(0, 256, size=(3, 40, 24), dtype=np.uint8)
    got = infer(bundle.contract, bundle.stats, bundle.model, image, channel_order="RGB")
    np.testing.assert_allclose(
        got.probabilities, expected_probabilities(net, image), atol=1e-5, rtol=0
    )


def test_smp_unetplusplus_at_the_top_level_with_smps_default_depth(tmp_path):
    decoder = [32, 16, 16, 8, 8]
    net = trained("smp_unetplusplus", seed=2, encoder_name="resnet18", decoder_channels=decoder)
    smp_model = {"architecture": "UnetPlusPlus", "encoder_name": "resnet18"}
    smp_model["decoder_channels"] = decoder
    src = smp_layout(tmp_path, net, smp_model=smp_model, form="top", shape="dataparallel")
    bundle = create_from_training_dir(src, tmp_path / "bundle", model_format="state_dict")
    spec = bundle.contract.model
    assert spec.architecture == "smp_unetplusplus"
    assert spec.params == {
        "encoder_name": "resnet18",
        "in_channels": 3,  # from input.channel_order
        "classes": 1,  # smp's default
        "decoder_channels": decoder,
        "encoder_depth": 5,  # smp's default
    }
    assert bundle.contract.alignment.multiple == 32
    image = np.random.default_rng(1).integers(0, 256, size=(3, 64, 32), dtype=np.uint8)
    got = infer(bundle.contract, bundle.stats, bundle.model, image, channel_order="RGB")
    np.testing.assert_allclose(
        got.probabilities, expected_probabilities(net, image), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("shape", CHECKPOINT_SHAPES)
def test_every_checkpoint_shape_loads_strictly(shape):
    source = trained("smp_unet", seed=3, **SMALL)
    target = ResNetUnet(**SMALL).eval()  # type: ignore[arg-type]
    load_weights(target, checkpoint(source.state_dict(), shape), where="best_model.pth")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_lightning_module_with_other_weights_beside_the_network(caplog):
    source = trained("smp_unetplusplus", seed=4, **SMALL)
    state = {f"model.{k}": v for k, v in source.state_dict().items()}
    state["criterion.pos_weight"] = torch.tensor([3.0])  # a loss's buffer, not the network's
    target = ResNetUnetPlusPlus(**SMALL)  # type: ignore[arg-type]
    with caplog.at_level("INFO", logger="tilecast.bundle.checkpoints"):
        load_weights(target, {"state_dict": state, "epoch": 3}, where="ckpt")
    assert "under 'model.'" in caplog.text and "1 other entries ignored" in caplog.text
    assert torch.equal(
        target.state_dict()["decoder.blocks.x_0_0.conv1.0.weight"],
        source.state_dict()["decoder.blocks.x_0_0.conv1.0.weight"],
    )


def test_state_dict_from_strips_nested_wrapper_prefixes():
    state = {"module.model.encoder.conv1.weight": torch.zeros(1)}
    assert list(state_dict_from({"state_dict": state}, where="x")) == ["encoder.conv1.weight"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"epoch": 3, "optimizer": {}}, r"found a dict with keys \[epoch, optimizer\]"),
        ({"state_dict": {}}, r"found an empty dict"),
        ([torch.zeros(1)], r"found list"),
    ],
)
def test_a_checkpoint_without_a_state_dict_says_what_it_found(payload, message):
    with pytest.raises(BundleError, match=r"ckpt: expected a state_dict .*" + message):
        state_dict_from(payload, where="ckpt")


def test_another_encoder_names_the_missing_and_unexpected_keys(tmp_path):
    net = trained("smp_unet", seed=5, **SMALL)  # resnet18 weights, config says resnet34
    smp_model = {"architecture": "Unet", **SMALL, "encoder_name": "resnet34"}
    src = smp_layout(tmp_path, net, smp_model=smp_model, form="top")
    with pytest.raises(BundleError) as info:
        create_from_training_dir(src, tmp_path / "bundle")
    message = str(info.value)
    assert "best_model.pth: weights do not fit the architecture smp_unet" in message
    assert "'encoder_name': 'resnet34'" in message
    assert "missing (in the architecture, not the checkpoint) [encoder.layer1.2." in message
    assert not (tmp_path / "bundle").exists()


def test_another_class_count_names_the_keys_of_another_shape(tmp_path):
    net = trained("smp_unetplusplus", seed=6, **SMALL)  # one class
    smp_model = {"architecture": "UnetPlusPlus", **SMALL, "classes": 2}
    src = smp_layout(tmp_path, net, smp_model=smp_model, shape="full")
    with pytest.raises(
        BundleError, match=r"2 of another shape \(checkpoint != architecture\)"
    ) as info:
        create_from_training_dir(src, tmp_path / "bundle")
    assert "segmentation_head.0.weight (1, 8, 3, 3) != (2, 8, 3, 3)" in str(info.value)
    assert "segmentation_head.0.bias (1,) != (2,)" in str(info.value)


def config_bytes(model: dict[str, object], **top: object) -> bytes:
    config = {
        "model_name": "m",
        "model_version": "1",
        "model": model,
        "input": {
            "channel_order": "RGBN",
            "dtype": "uint16",
            "value_scaling": "raw",
            "input_range": [0, 10000],
        },
        "postprocessing": {"activation": "sigmoid", "labels": ["bg", "rts"], "threshold": 0.5},
        **top,
    }
    return yaml.safe_dump(config).encode()


def test_config_defaults_are_smps_and_in_channels_follows_the_channel_order():
    config = read_training_config(config_bytes({"architecture": "unetplusplus"}), where="c.yaml")
    assert config.architecture.name == "smp_unetplusplus"
    assert config.architecture.params == {
        "encoder_name": "resnet34",
        "in_channels": 4,
        "classes": 1,
        "encoder_depth": 5,
    }


@pytest.mark.parametrize(
    ("model", "top", "message"),
    [
        (
            {"architecture": "FPN"},
            {},
            r"model.architecture must be one of Unet, UnetPlusPlus .*'FPN'",
        ),
        (
            {"architecture": "Unet", "decoder_attention_type": "scse"},
            {},
            r"model.decoder_attention_type must be None .*without attention.*'scse' is given",
        ),
        (
            {"architecture": "Unet", "activation": "sigmoid"},
            {},
            r"must return logits; name the activation in postprocessing\.activation\)",
        ),
        (
            {"architecture": "Unet", "in_channels": 3},
            {},
            r"in_channels is 3 but input\.channel_order names 4 channels",
        ),
        (
            {"architecture": "Unet", "encoder": "resnet18", "encoder_name": "resnet18"},
            {},
            r"give model.encoder_name or model.encoder, not both",
        ),
        ({"architecture": "Unet", "dropout": 0.1}, {}, r"model.dropout is not an smp argument"),
        ({"architecture": "Unet"}, {"architecture": "Unet"}, r"described twice"),
    ],
)
def test_config_errors_name_the_key_and_what_it_must_be(model, top, message):
    with pytest.raises(ContractError, match=r"^c\.yaml: .*" + message):
        read_training_config(config_bytes(model, **top), where="c.yaml")


def test_an_encoder_tilecast_does_not_implement_is_named(tmp_path):
    net = trained("smp_unet", seed=7, **SMALL)
    smp_model = {"architecture": "Unet", **SMALL, "encoder_name": "resnet101"}
    src = smp_layout(tmp_path, net, smp_model=smp_model)
    with pytest.raises(ContractError, match=r"encoder_name must be one of .*'resnet101' is given"):
        create_from_training_dir(src, tmp_path / "bundle")


def test_a_broken_smp_install_warns_and_tilecast_builds_the_model(tmp_path, monkeypatch):
    """An installed smp whose import fails (its torchvision, as in this venv) is not fatal."""
    package = tmp_path / "site" / "segmentation_models_pytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    net = ResNetUnet(**SMALL)  # type: ignore[arg-type]
    with pytest.warns(TilecastWarning, match=r"installed but cannot be imported .*torchvision"):
        assert build_with_smp(net) is None


def test_a_model_that_mirrors_no_smp_class_is_built_by_tilecast():
    assert build_with_smp(build_model("unet", {"in_channels": 3, "classes": 1})) is None
