"""A U-Net with a ResNet encoder, in segmentation_models_pytorch's state_dict layout.

The thaw-slump team trains ``smp.Unet(encoder_name="resnet34")``; this module is tilecast's own
implementation of that architecture, written from the papers (He et al. 2015, "Deep Residual
Learning for Image Recognition"; Ronneberger et al. 2015, "U-Net") so that serving needs
neither smp nor torchvision. Its parameter and buffer names and shapes are exactly those of
``smp.Unet(encoder_name=..., encoder_weights=None, in_channels=C, classes=K)`` (smp 0.6.0,
``decoder_use_batchnorm=True``, no attention), so a training checkpoint loads with
``load_state_dict(strict=True)`` and gives the same outputs
(``scripts/check_smp_compat.py`` and ``tests/compat/``, run by ``make test-compat``, check
both against real smp).

Layout, shallow to deep (``encoder_depth`` 5, ``H x W`` input)::

    encoder.conv1, encoder.bn1   7x7 conv stride 2 (no bias), BN, ReLU   -> skip, H/2
    (max-pool 3x3 stride 2, no parameters)
    encoder.layer1               ResNet stage, stride 1                  -> skip, H/4
    encoder.layer2 .. layer4     ResNet stages, stride 2                 -> H/8 .. H/32
    decoder.blocks.0 .. 4        nearest 2x upsampling, concatenation with the skip of the
                                 next shallower stage (none for the last block), then
                                 conv1 and conv2: each Sequential(3x3 conv without bias, BN, ReLU)
    segmentation_head.0          3x3 conv with bias -> logits, no activation

A stage ``encoder.layer{i}`` is a list of residual blocks ``encoder.layer{i}.{j}``: basic blocks
(``conv1/bn1``, ``conv2/bn2``; ResNet-18/34) or bottlenecks (``conv1..3/bn1..3``, the stride on
the 3x3 conv; ResNet-50). The first block of a stage whose stride or width changes has a
projection shortcut ``downsample.0`` (1x1 conv, no bias) + ``downsample.1`` (BN). The raw input
is not a skip, and ResNet's classifier (``fc``) is absent, as in smp.

With ``encoder_depth`` d < 5 the decoder has d blocks (``decoder_channels`` must have d
entries) and uses the stem and ``layer1 .. layer{d-1}`` only; the deeper stages still exist,
unused, because smp keeps them and their weights are in its checkpoints.

Input height and width must be multiples of :attr:`ResNetUnet.alignment`
(``2 ** encoder_depth``); the model does not pad (the serving path does). smp upsamples each
decoder input to the size of the next shallower feature, which on such inputs is exactly the
nearest 2x upsampling done here. ``forward`` has no Python branching on shapes, so it exports
with ``torch.export`` with a dynamic batch, height and width.

The model is meant to receive trained weights. Untrained, every conv is initialised as in
He et al. 2015, "Delving Deep into Rectifiers" (normal, ReLU gain, fan-out, as torchvision's
ResNet does), conv biases at 0, and
BN at PyTorch's defaults (weight 1, bias 0, running mean 0 and variance 1): unlike PyTorch's
default conv init, this gives random-weight outputs that vary across an image rather than a
near-constant map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from tilecast.errors import ContractError
from tilecast.models.registry import register

EncoderName = Literal["resnet18", "resnet34", "resnet50"]
DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)
ENCODER_DEPTHS = (3, 4, 5)
STEM_WIDTH = 64
STAGE_WIDTHS = (64, 128, 256, 512)  # the bottleneck width of each stage (``planes``)


@dataclass(frozen=True)
class ResNetSpec:
    """One member of the ResNet family: the residual block and the blocks per stage."""

    block: Literal["basic", "bottleneck"]
    layers: tuple[int, int, int, int]

    @property
    def expansion(self) -> int:
        """A block's output width over its ``planes`` (1 basic, 4 bottleneck)."""
        return 1 if self.block == "basic" else 4

    def out_channels(self, depth: int) -> list[int]:
        """The channels of the ``depth`` features the encoder returns, shallow to deep."""
        return [STEM_WIDTH, *(w * self.expansion for w in STAGE_WIDTHS)][:depth]


# He et al. 2015, table 1.
RESNETS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2)),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3)),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6, 3)),
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut (``downsample.0`` conv, ``downsample.1`` BN), when needed."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class _BasicBlock(nn.Module):
    """Two 3x3 convs (the first carries the stride) plus the shortcut, then ReLU."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return self.relu(h + identity)


class _Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand to ``4 * planes``, plus the shortcut."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = 4 * planes
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return self.relu(h + identity)


_BLOCKS: dict[str, type[_BasicBlock] | type[_Bottleneck]] = {
    "basic": _BasicBlock,
    "bottleneck": _Bottleneck,
}


class ResNetEncoder(nn.Module):
    """ResNet without its classifier, returning the ``depth`` features that the decoder uses:
    the stem's output after ReLU (before the max-pool) and the outputs of the first
    ``depth - 1`` stages. All four stages are built whatever the depth (see the module doc)."""

    def __init__(self, spec: ResNetSpec, *, in_channels: int, depth: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, STEM_WIDTH, kernel_size=7, stride=2, padding=3, bias=False
        )
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        block = _BLOCKS[spec.block]
        widths = [STEM_WIDTH, *(planes * spec.expansion for planes in STAGE_WIDTHS)]
        # The first stage follows the max-pool and keeps the resolution; the others halve it.
        strides = (1, 2, 2, 2)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            nn.Sequential(
                block(widths[i], STAGE_WIDTHS[i], strides[i]),
                *(block(widths[i + 1], STAGE_WIDTHS[i], 1) for _ in range(spec.layers[i] - 1)),
            )
            for i in range(len(STAGE_WIDTHS))
        )
        self.depth = depth

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.relu(self.bn1(self.conv1(x)))
        features = [h]
        h = self.maxpool(h)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4)[: self.depth - 1]:
            h = stage(h)
            features.append(h)
        return features


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """``.0`` 3x3 conv without bias, ``.1`` BN, ``.2`` ReLU."""
    return nn.Sequential(_conv3x3(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    """Nearest 2x upsampling, concatenation with the skip (if any), then two conv-BN-ReLU
    (``conv1``, ``conv2``); shared with the U-Net++ decoder (:mod:`tilecast.models.unetplusplus`)."""

    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(cin + skip, cout)
        self.conv2 = _conv_bn_relu(cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:  # fixed per block at construction, not a shape branch
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UnetDecoder(nn.Module):
    """``blocks.{i}``: block 0 takes the deepest feature; block i concatenates the encoder
    feature one stage shallower than its input; the last block has no skip."""

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int]) -> None:
        super().__init__()
        deep_first = list(reversed(encoder_channels))
        inputs = [deep_first[0], *decoder_channels[:-1]]
        skips = [*deep_first[1:], 0]
        self.blocks = nn.ModuleList(
            DecoderBlock(cin, skip, cout)
            for cin, skip, cout in zip(inputs, skips, decoder_channels, strict=True)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        deep_first = features[::-1]
        skips: list[torch.Tensor | None] = [*deep_first[1:], None]
        x = deep_first[0]
        for block, skip in zip(self.blocks, skips, strict=True):
            x = block(x, skip)
        return x


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ContractError(f"{name} must be a positive integer, {value!r} is given")
    return value


def _resolve_decoder_channels(channels: Sequence[int], depth: int) -> tuple[int, ...]:
    if isinstance(channels, str | bytes) or not isinstance(channels, Sequence):
        raise ContractError(
            f"decoder_channels must be a sequence of encoder_depth integers, {channels!r} is given"
        )
    if len(channels) != depth:
        raise ContractError(
            f"decoder_channels must have encoder_depth = {depth} entries, {len(channels)} are "
            f"given ({list(channels)})"
        )
    return tuple(_positive_int(f"decoder_channels[{i}]", c) for i, c in enumerate(channels))


def check_params(
    *,
    encoder_name: Any,
    in_channels: Any,
    classes: Any,
    decoder_channels: Any,
    encoder_depth: Any,
) -> tuple[ResNetSpec, tuple[int, ...]]:
    """Check the parameters smp's ResNet-encoder models share; returns the encoder's
    :class:`ResNetSpec` and the decoder widths, or raises :class:`ContractError` naming the
    parameter, what it must be and what was given."""
    spec = RESNETS.get(encoder_name) if isinstance(encoder_name, str) else None
    if spec is None:
        raise ContractError(
            f"encoder_name must be one of {', '.join(map(repr, RESNETS))}; "
            f"{encoder_name!r} is given"
        )
    _positive_int("in_channels", in_channels)
    _positive_int("classes", classes)
    if isinstance(encoder_depth, bool) or encoder_depth not in ENCODER_DEPTHS:
        raise ContractError(
            f"encoder_depth must be one of {', '.join(map(str, ENCODER_DEPTHS))}; "
            f"{encoder_depth!r} is given"
        )
    return spec, _resolve_decoder_channels(decoder_channels, encoder_depth)


def init_weights(model: nn.Module) -> None:
    """He et al. 2015 ("Delving Deep into Rectifiers") for every conv (normal, ReLU gain,
    fan-out), conv biases 0; BatchNorm keeps PyTorch's defaults (see the module doc)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class SmpEncoderDecoder(nn.Module):
    """A ResNet encoder, a decoder and smp's 3x3 segmentation head, laid out as smp lays out
    its models (``encoder.``, ``decoder.``, ``segmentation_head.0.``); subclasses name the
    decoder (built from the encoder's channels and the decoder channels) and the smp class."""

    smp_class: ClassVar[str]  # the segmentation_models_pytorch class mirrored
    decoder_class: ClassVar[Callable[[Sequence[int], Sequence[int]], nn.Module]]

    def __init__(
        self,
        *,
        encoder_name: EncoderName = "resnet34",
        in_channels: int = 3,
        classes: int = 1,
        decoder_channels: Sequence[int] = DEFAULT_DECODER_CHANNELS,
        encoder_depth: int = 5,
    ) -> None:
        super().__init__()
        spec, resolved = check_params(
            encoder_name=encoder_name,
            in_channels=in_channels,
            classes=classes,
            decoder_channels=decoder_channels,
            encoder_depth=encoder_depth,
        )
        self.encoder_depth = encoder_depth
        # Everything needed to rebuild this model with build_model(its name, config); JSON-safe.
        self.config: dict[str, Any] = {
            "encoder_name": encoder_name,
            "in_channels": in_channels,
            "classes": classes,
            "decoder_channels": list(resolved),
            "encoder_depth": encoder_depth,
        }
        self.encoder = ResNetEncoder(spec, in_channels=in_channels, depth=encoder_depth)
        self.decoder = self.decoder_class(spec.out_channels(encoder_depth), resolved)
        self.segmentation_head = nn.Sequential(
            nn.Conv2d(resolved[-1], classes, kernel_size=3, padding=1)
        )
        init_weights(self)

    @property
    def alignment(self) -> int:
        """Input height and width must be multiples of this (``2 ** encoder_depth``)."""
        return 2**self.encoder_depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentation_head(self.decoder(self.encoder(x)))


@register("smp_unet")
class ResNetUnet(SmpEncoderDecoder):
    """U-Net with a ResNet encoder returning logits ``(N, classes, H, W)`` for input
    ``(N, in_channels, H, W)``; state_dict-compatible with ``smp.Unet`` (see the module doc)."""

    smp_class: ClassVar[str] = "Unet"
    decoder_class = UnetDecoder
