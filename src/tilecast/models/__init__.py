"""Reference architectures, built by name from a registry (``build_model("unet", params)``)."""

from tilecast.models.classifier import ChipClassifier
from tilecast.models.registry import ARCHITECTURES, architecture_names, build_model, register
from tilecast.models.resnet_unet import ResNetUnet
from tilecast.models.unet import UNet
from tilecast.models.unetplusplus import ResNetUnetPlusPlus

__all__ = [
    "ARCHITECTURES",
    "ChipClassifier",
    "ResNetUnet",
    "ResNetUnetPlusPlus",
    "UNet",
    "architecture_names",
    "build_model",
    "register",
]
