"""Creating bundles from the training layout and reading legacy TorchScript archives."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch
import yaml

from support import STATS, rgb_draft, stats_bytes, tiny_unet
from tilecast.bundle import create_from_training_dir, load_bundle
from tilecast.bundle.contract import default_steps
from tilecast.bundle.create import create_bundle, write_bundle
from tilecast.bundle.formats import TORCHSCRIPT_META
from tilecast.bundle.golden import GoldenPair
from tilecast.bundle.runtime import infer
from tilecast.errors import BundleError, BundleIntegrityError, GoldenMismatchError, TilecastWarning


def training_dir(tmp_path, *, golden_order: str | None = None, checkpoint: str = "full"):
    """A training team's plain layout; golden pairs computed by *their* preprocessing code."""
    net = tiny_unet(seed=5)
    src = tmp_path / "train"
    (src / "golden").mkdir(parents=True)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}  # saved from DataParallel
    payload = {"state_dict": state, "epoch": 7, "optimizer": {}} if checkpoint == "full" else state
    torch.save(payload, src / "best_model.pth")
    (src / "normalization_stats.json").write_bytes(stats_bytes())
    config = {
        "model_name": "rts-test",
        "model_version": "1.2.3",
        "architecture": {"name": "unet", "params": net.config},
        "input": {
            "channel_order": "RGB",
            "dtype": "uint8",
            "value_scaling": "raw",
            "nodata_fill": "mean",
            "input_range": [0, 255],
        },
        "data": {"dataset_version": "test-v1"},
        "postprocessing": {
            "activation": "sigmoid",
            "labels": ["background", "rts"],
            "threshold": 0.42,
        },
        "optimizer": {"lr": 0.001},  # training-only keys are ignored
    }
    (src / "config.yaml").write_text(yaml.safe_dump(config))
    if golden_order is not None:
        rng = np.random.default_rng(0)
        image = rng.integers(1, 255, size=(3, 48, 80), dtype=np.uint8)
        fed = image if golden_order == "RGB" else image[::-1]
        x = torch.from_numpy(fed.astype(np.float32))
        mean = torch.tensor(STATS["mean"]).view(3, 1, 1)
        std = torch.tensor(STATS["std"]).view(3, 1, 1)
        x = torch.nn.functional.pad(((x - mean) / std)[None], (0, 16, 0, 16), mode="reflect")
        with torch.no_grad():
            out = torch.sigmoid(net.eval()(x))[0, :, :48, :80].numpy()
        pair = GoldenPair(
            name="tile_a.npz", input=image, output=out, channel_order="RGB", nodata=None
        )
        (src / "golden" / "tile_a.npz").write_bytes(pair.to_bytes())
    return src, net


@pytest.mark.parametrize("model_format", ["export", "state_dict"])
@pytest.mark.parametrize("checkpoint", ["full", "bare"])
def test_training_layout_becomes_a_verified_bundle(tmp_path, model_format, checkpoint):
    src, _net = training_dir(tmp_path, golden_order="RGB", checkpoint=checkpoint)
    bundle = create_from_training_dir(src, tmp_path / "bundle", model_format=model_format)
    assert bundle.contract.golden.source == "training"
    assert bundle.contract.golden.files == ("tile_a.npz",)
    assert bundle.contract.postprocessing.threshold == 0.42
    assert bundle.contract.stats.dataset_version == "test-v1"
    assert bundle.contract.model.architecture == "unet"
    assert (
        tmp_path / "bundle" / ("model.pt2" if model_format == "export" else "best_model.pth")
    ).exists()
    reloaded = load_bundle(tmp_path / "bundle")
    assert reloaded.digest == bundle.digest


def test_training_golden_made_with_the_wrong_channel_order_stops_creation(tmp_path):
    src, _ = training_dir(tmp_path, golden_order="BGR")  # training fed BGR; config claims RGB
    with pytest.raises(GoldenMismatchError, match="training golden"):
        create_from_training_dir(src, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists(), "no partial bundle is left behind"


def test_existing_bundle_is_not_overwritten_by_accident(tmp_path):
    src, _ = training_dir(tmp_path)
    create_from_training_dir(src, tmp_path / "bundle", model_format="state_dict")
    with pytest.raises(BundleError, match="not empty"):
        create_from_training_dir(src, tmp_path / "bundle", model_format="state_dict")


def test_weights_for_another_architecture_are_refused(tmp_path):
    src, _ = training_dir(tmp_path)
    torch.save(tiny_unet(widths=[8, 8, 8, 16, 16, 16]).state_dict(), src / "best_model.pth")
    with pytest.raises(BundleError, match="do not fit the architecture"):
        create_from_training_dir(src, tmp_path / "bundle")


def legacy_torchscript_bundle(tmp_path, *, meta: dict | None, baked=()):
    """Repackage a bundle's model as a traced TorchScript archive, the way old models shipped."""
    net = tiny_unet(seed=9).eval()
    draft = rgb_draft(preprocessing=default_steps(baked=baked))
    ref = create_bundle(
        net,
        draft,
        stats_bytes=stats_bytes(),
        out=tmp_path / "ref",
        model_format="state_dict",
        architecture="unet",
    )
    traced = torch.jit.trace(ref.model.module, torch.zeros(1, 3, 64, 64))
    buf = io.BytesIO()
    extra = {TORCHSCRIPT_META: json.dumps(meta)} if meta is not None else {}
    torch.jit.save(traced, buf, _extra_files=extra)
    contract = json.loads((tmp_path / "ref" / "contract.json").read_text())
    contract["model"].update(format="torchscript", file="model.pt", architecture=None, params={})
    contents = {
        "contract.json": json.dumps(contract).encode(),
        "normalization_stats.json": stats_bytes(),
        "model.pt": buf.getvalue(),
        **{f"golden/{p.name}": p.read_bytes() for p in (tmp_path / "ref" / "golden").iterdir()},
    }
    return contents, ref


def test_legacy_torchscript_with_metadata_loads_and_matches(tmp_path):
    contents, ref = legacy_torchscript_bundle(
        tmp_path,
        meta={"baked_steps": ["scale_values", "normalize"]},
        baked=("scale_values", "normalize"),
    )
    legacy = write_bundle(contents, out=tmp_path / "legacy", overwrite=False)
    image = np.random.default_rng(1).integers(1, 255, size=(3, 40, 70), dtype=np.uint8)
    a = infer(legacy.contract, legacy.stats, legacy.model, image, channel_order="RGB")
    b = infer(ref.contract, ref.stats, ref.model, image, channel_order="RGB")
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_legacy_torchscript_whose_metadata_disagrees_is_refused(tmp_path):
    contents, _ = legacy_torchscript_bundle(tmp_path, meta={"baked_steps": ["normalize"]}, baked=())
    with pytest.raises(BundleIntegrityError, match="would run twice or not at all"):
        write_bundle(contents, out=tmp_path / "legacy", overwrite=False)


def test_legacy_torchscript_without_metadata_warns_and_relies_on_golden(tmp_path):
    contents, _ = legacy_torchscript_bundle(tmp_path, meta=None, baked=())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_bundle(contents, out=tmp_path / "legacy", overwrite=False)
    assert any(issubclass(w.category, TilecastWarning) for w in caught)
