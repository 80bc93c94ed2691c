"""The MLflow pyfunc model ``tilecast bundle log`` records: tilecast's runtime on the bundle.

The logged model's code is three lines (:data:`MODEL_CODE`, MLflow's "models from code": no
pickle) that make a :class:`BundleModel`; the bundle's files are the model's artifact.
Loading the model loads the bundle with every check and the digest it was logged with;
``predict`` is ``runtime.infer`` per image, so serving through MLflow runs the contract
exactly as ``tilecast predict`` and the tiled job do.

This module imports mlflow: it is only imported through ``tilecast.bundle.tracking`` (the
``tracking`` extra) or by MLflow itself.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np

from tilecast.bundle.load import Bundle, load_bundle
from tilecast.bundle.runtime import infer
from tilecast.bundle.tracking import PYFUNC_ARTIFACT
from tilecast.errors import BundleIntegrityError, InputError

#: the logged model's code (tilecast must be installed where the model is loaded)
MODEL_CODE = """\
# An MLflow pyfunc model: tilecast's runtime on the bundle in this model's artifacts.
import mlflow.models

from tilecast.bundle.mlflow_model import BundleModel

mlflow.models.set_model(BundleModel())
"""


def as_contract_dtype(array: np.ndarray, dtype: str) -> np.ndarray:
    """``array`` in the contract's dtype, when that changes no value; else refused.

    Arrays that came through JSON (MLflow's scoring server) carry int64 or float64 whatever
    the image was: integers are cast to an integer dtype when every value fits, float64 to
    float32. Anything else (floats for a uint8 model, a value out of range) is refused, since
    casting it would feed the model pixels it was not trained on.
    """
    if array.dtype == dtype:
        return array
    target = np.dtype(dtype)
    if np.issubdtype(array.dtype, np.integer) and np.issubdtype(target, np.integer):
        info = np.iinfo(target)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(target)
        raise InputError(
            f"the model expects {dtype} pixels ({info.min}..{info.max}), the "
            f"{array.dtype} input holds {array.min()}..{array.max()}"
        )
    if target == np.float32 and np.issubdtype(array.dtype, np.number):
        return array.astype(np.float32)
    raise InputError(f"the model expects {dtype} pixels, the input is {array.dtype}")


def predict_probabilities(bundle: Bundle, model_input: Any) -> np.ndarray:
    """``runtime.infer`` on one image ``(C, H, W)`` or each image of a batch ``(N, C, H, W)``.

    Images are in the contract's channel order; the result is float32 probabilities,
    ``(K, H, W)`` or ``(N, K, H, W)``. Pixels the contract's guard finds invalid (sentinels,
    NaN) hold meaningless values, as ``runtime.infer`` documents.
    """
    if not isinstance(model_input, np.ndarray | list):
        raise InputError(
            "expected a numpy image (channels, rows, cols) or batch (n, channels, rows, cols), "
            f"got {type(model_input).__name__}"
        )
    c = bundle.contract
    array = as_contract_dtype(np.asarray(model_input), c.input.dtype)
    if array.ndim not in (3, 4):
        raise InputError(
            "expected a numpy image (channels, rows, cols) or batch (n, channels, rows, cols), "
            f"got shape {array.shape}"
        )
    images = array if array.ndim == 4 else array[None]
    order = c.input.channel_order
    out = [
        infer(c, bundle.stats, bundle.model, image, channel_order=order).probabilities
        for image in images
    ]
    stacked = np.stack(out) if out else np.zeros((0, c.model.classes, 0, 0), np.float32)
    return stacked if array.ndim == 4 else stacked[0]


class BundleModel(mlflow.pyfunc.PythonModel):
    """A tilecast bundle as an MLflow pyfunc model; holds nothing until loaded."""

    def load_context(self, context: Any) -> None:
        self.bundle = load_bundle(context.artifacts[PYFUNC_ARTIFACT])
        expected = (context.model_config or {}).get("bundle_digest")
        if expected is not None and self.bundle.digest != expected:
            raise BundleIntegrityError(
                f"{self.bundle.uri}: bundle digest is {self.bundle.digest}, the model was "
                f"logged with {expected}"
            )

    # np.ndarray is a hint MLflow takes as "no schema to infer" (images vary in size)
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        return predict_probabilities(self.bundle, model_input)
