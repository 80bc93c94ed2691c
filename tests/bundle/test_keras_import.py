"""A Keras 3 model goes in through ONNX, its input scaling declared and proven.

A small segmentation model on Keras' torch backend (TensorFlow is not needed) is trained on
images scaled to [-1, 1] by ``keras.applications.mobilenet_v2.preprocess_input`` (mode "tf"),
exported by Keras' own ONNX exporter and wrapped by ``tilecast bundle import`` with golden pairs
from ``model.predict``. Fed raw pixels, the bundle gives Keras' prediction; a draft declaring
[0, 1] (the trap of ``preprocess_input``) is refused at import by the golden check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from tilecast.bundle import load_bundle
from tilecast.bundle.golden import GoldenPair
from tilecast.bundle.runtime import infer
from tilecast.cli.main import cli
from tilecast.optional import import_optional

os.environ["KERAS_BACKEND"] = "torch"  # read when keras is first imported
keras = import_optional("keras", extra="keras", purpose="the Keras import test")
if keras.backend.backend() != "torch":
    raise RuntimeError(
        f"keras was imported with the {keras.backend.backend()!r} backend before this test "
        "module; it needs KERAS_BACKEND=torch"
    )

pytestmark = [  # Keras' and torch's own, about their internals
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]
ATOL = 1e-4
LABELS = ["background", "target"]


def preprocess(raw: np.ndarray) -> np.ndarray:
    """Raw (N, H, W, 3) pixels in [0, 255] as the model was trained on them, in [-1, 1]."""
    return keras.applications.mobilenet_v2.preprocess_input(raw.astype(np.float32))


def keras_predict(model, image: np.ndarray) -> np.ndarray:
    """Keras' probabilities (K, H, W) for a raw (3, H, W) image."""
    batch = preprocess(image.transpose(1, 2, 0)[None])
    return model.predict(batch, verbose=0)[0].transpose(2, 0, 1)


def segmenter():
    """Stride-1 layers only: Keras' torch exporter traces at 1 x 1 pixels (its dynamic shapes
    replace every unknown dimension by 1), which a downsampling model does not survive."""
    layers = keras.layers
    image = keras.Input((None, None, 3))
    near = layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    wide = layers.Conv2D(8, 3, dilation_rate=3, padding="same", activation="relu")(near)
    both = layers.Concatenate()([near, wide])
    hidden = layers.Conv2D(8, 3, padding="same", activation="relu")(both)
    return keras.Model(image, layers.Conv2D(2, 1, activation="softmax")(hidden))


def draft(value_scaling: str) -> dict:
    steps = ["guard_sentinels", "reorder_channels", "fill_invalid", "scale_values"]
    return {
        "name": "keras-seg",
        "version": "1.0.0",
        "input": {
            "channels": 3,
            "channel_order": "RGB",
            "dtype": "uint8",
            "value_scaling": value_scaling,
            "input_range": [0, 255],
        },
        # preprocess_input "tf" scales and does not normalise: no normalize step
        "preprocessing": [{"op": op} for op in (*steps, "pad_to_multiple")],
        "postprocessing": {"activation": "none", "labels": LABELS, "threshold": 0.5},
        "alignment_multiple": 1,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, object]:
    """The exported graph, statistics, drafts and golden pairs, and the Keras model."""
    root = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    raw = rng.integers(1, 256, size=(48, 24, 24, 3)).astype(np.float32)
    target = np.eye(2, dtype=np.float32)[(raw[..., 0] > raw[..., 2]).astype(int)]
    model = segmenter()
    # categorical: sparse_categorical_crossentropy after a softmax fails its backward on torch
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy")
    model.fit(preprocess(raw), target, epochs=4, batch_size=16, verbose=0)
    model.export(str(root / "seg.onnx"), format="onnx", verbose=False)
    scaled = preprocess(raw)
    stats = {
        "mean": scaled.mean(axis=(0, 1, 2)).tolist(),
        "std": scaled.std(axis=(0, 1, 2)).tolist(),
        "dataset_version": "keras-synthetic-v1",
    }
    (root / "stats.json").write_text(json.dumps(stats))
    for scaling in ("symmetric", "unit"):
        (root / f"{scaling}.yaml").write_text(yaml.safe_dump(draft(scaling)))
    (root / "golden").mkdir()
    for name, (h, w) in {"a.npz": (40, 56), "b.npz": (33, 47)}.items():
        image = rng.integers(1, 256, size=(3, h, w), dtype=np.uint8)
        pair = GoldenPair(
            name=name,
            input=image,
            output=keras_predict(model, image),
            channel_order="RGB",
            nodata=None,
        )
        (root / "golden" / name).write_bytes(pair.to_bytes())
    return root, model


def bundle_import(src: Path, scaling: str, out: Path):
    args = [
        "bundle", "import", src / "seg.onnx", "--draft", src / f"{scaling}.yaml",
        "--stats", src / "stats.json", "--golden", src / "golden", "--out", out,
    ]  # fmt: skip
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_bundle_fed_raw_pixels_gives_the_keras_prediction(trained, tmp_path):
    src, model = trained
    result = bundle_import(src, "symmetric", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    assert "model.onnx, NHWC" in result.output and "2 pair(s) from training" in result.output
    bundle = load_bundle(tmp_path / "bundle")  # golden pairs checked again at load
    c = bundle.contract
    assert (c.model.format, c.model.params, c.model.classes) == ("onnx", {"layout": "NHWC"}, 2)
    assert c.host_steps == (
        "guard_sentinels", "reorder_channels", "fill_invalid", "scale_values", "pad_to_multiple",
    )  # fmt: skip
    assert c.baked_steps == () and bundle.golden_max_error <= ATOL
    image = np.random.default_rng(7).integers(0, 256, size=(3, 61, 45), dtype=np.uint8)
    served = infer(c, bundle.stats, bundle.model, image, channel_order="RGB")
    assert served.valid.all()
    expected = keras_predict(model, image)
    assert float(np.abs(served.probabilities - expected).max()) <= ATOL
    # what a [0, 1] pipeline would have fed: far off, so the golden check can tell
    unit = model.predict(image.transpose(1, 2, 0)[None] / 255.0, verbose=0)[0]
    assert float(np.abs(unit.transpose(2, 0, 1) - expected).max()) > 100 * ATOL


def test_a_draft_declaring_unit_scaling_is_refused_by_the_golden_check(trained, tmp_path):
    src, _model = trained
    result = bundle_import(src, "unit", tmp_path / "bundle")
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "GoldenMismatchError" in message and "differ from the golden output" in message
    assert "The draft declares value_scaling 'unit' ([0, 1] from [0, 255])" in message
    assert "the model was trained on 'symmetric' ([-1, 1])" in message
    assert "Set value_scaling: symmetric in the draft" in message
    assert not (tmp_path / "bundle").exists()
