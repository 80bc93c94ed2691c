"""U-Net++ with a ResNet encoder, in segmentation_models_pytorch's state_dict layout.

tilecast's own implementation of ``smp.UnetPlusPlus(encoder_name="resnet18|34|50")``, written
from the paper (Zhou et al. 2018, "UNet++: A Nested U-Net Architecture for Medical Image
Segmentation") and smp's parameter names, so that serving needs neither smp nor torchvision.
The encoder is :class:`~tilecast.models.resnet_unet.ResNetEncoder`, the one ``smp_unet`` uses.
Its parameter and buffer names and shapes are exactly those of
``smp.UnetPlusPlus(encoder_name=..., encoder_weights=None, in_channels=C, classes=K)`` (smp
0.6.0, batch-norm decoder, no attention, nearest upsampling), so a training checkpoint loads
with ``load_state_dict(strict=True)`` and gives the same outputs (``scripts/check_smp_compat.py``
and ``tests/compat/`` check both against real smp).

The nested decoder (the paper's figure 1a). Number the encoder's features by resolution,
``X[i, 0]`` at level ``i`` (0 is the stem at ``H/2``, ``depth - 1`` the deepest). Every level
above the deepest gets a row of nodes ``X[i, j]``, ``j = 1 .. depth - 1 - i``, each one

    X[i, j] = H(cat[U(X[i + 1, j - 1]), X[i, j - 1], ..., X[i, 1], X[i, 0]])

where ``U`` is nearest 2x upsampling and ``H`` two 3x3 conv-BN-ReLU (a
:class:`~tilecast.models.resnet_unet.DecoderBlock`): each node sees the upsampled node below
and to the left and, through dense skip connections, every node before it on its own level.
The paper leaves the order of the concatenation open; smp's is the one above (the newest node
first, the encoder feature last), which the weights of its first conv depend on.
The last node of each level, ``X[i, depth - 1 - i]``, is the one a plain U-Net's decoder would
have there (the paper's diagonal); the last of the top level, ``X[0, depth - 1]``, is at
``H/2``, and one more block upsamples it to ``H`` without a skip; the segmentation head (3x3
conv with bias) turns that into logits. There is no deep supervision: one head, on the final
node, as in smp.

Widths: the last node of each level has smp's ``decoder_channels`` entry for that level
(deepest level first), and the final block the last entry; every other node keeps its level's
encoder width. smp names a node ``decoder.blocks.x_{a}_{b}``, where ``b = depth - 2 - i``
counts levels from the deepest one that has nodes and ``a = b + 1 - j`` counts back from the
level's last node, so ``x_0_b`` is the last node of its level; the final block is
``x_0_{depth - 1}``. For depth 5: ``x_3_3`` is ``X[0, 1]``, ``x_0_3`` is ``X[0, 4]``, and
``x_0_0`` is ``X[3, 1]``.

With ``encoder_depth`` d < 5 the decoder uses the stem and ``layer1 .. layer{d-1}`` only; the
deeper stages still exist, unused, as in smp. Input height and width must be multiples of
:attr:`ResNetUnetPlusPlus.alignment` (``2 ** encoder_depth``); ``forward`` has no Python
branching on shapes, so it exports with ``torch.export`` with a dynamic batch, height and width.
Untrained weights are initialised as ``smp_unet``'s are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from tilecast.models.registry import register
from tilecast.models.resnet_unet import (
    DecoderBlock,
    SmpEncoderDecoder,
)


def node_name(level: int, j: int, depth: int) -> str:
    """smp's module name for node ``X[level, j]`` of a depth-``depth`` decoder (module doc);
    raises ``ValueError`` for a node the decoder does not have."""
    if not 0 <= level <= depth - 2 or not 1 <= j <= depth - 1 - level:
        raise ValueError(
            f"a depth-{depth} decoder has nodes X[level, j] for level 0..{depth - 2} and "
            f"j 1..{depth - 1} - level; X[{level}, {j}] is asked for"
        )
    b = depth - 2 - level
    return f"x_{b + 1 - j}_{b}"


class NestedDecoder(nn.Module):
    """The nested decoder: ``blocks`` maps smp's node names to :class:`DecoderBlock`s.

    ``encoder_channels`` are the encoder's feature widths shallow to deep (``depth`` of them);
    ``decoder_channels`` smp's decoder widths, deepest first (``depth`` of them).
    """

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int]) -> None:
        super().__init__()
        depth = len(encoder_channels)
        self.depth = depth

        def width(level: int, j: int) -> int:
            if j == 0 or j < depth - 1 - level:
                return encoder_channels[level]
            return decoder_channels[depth - 2 - level]  # a level's last node

        blocks: dict[str, DecoderBlock] = {}
        # smp's order: the deepest level first; along a level from its last node to its first.
        for level in range(depth - 2, -1, -1):
            for j in range(depth - 1 - level, 0, -1):
                skips = encoder_channels[level] * j  # X[i, j - 1] .. X[i, 0], none a last node
                blocks[node_name(level, j, depth)] = DecoderBlock(
                    width(level + 1, j - 1), skips, width(level, j)
                )
        self.final_name = f"x_0_{depth - 1}"
        blocks[self.final_name] = DecoderBlock(decoder_channels[-2], 0, decoder_channels[-1])
        self.blocks = nn.ModuleDict(blocks)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        depth = self.depth
        nodes: dict[tuple[int, int], torch.Tensor] = {(i, 0): f for i, f in enumerate(features)}
        # Node X[i, j] needs X[i + 1, j - 1]: fill the grid by anti-diagonals j = 1, 2, ...
        for j in range(1, depth):
            for level in range(depth - 1 - j, -1, -1):
                block = self.blocks[node_name(level, j, depth)]
                skip = torch.cat([nodes[(level, k)] for k in range(j - 1, -1, -1)], dim=1)
                nodes[(level, j)] = block(nodes[(level + 1, j - 1)], skip)
        return self.blocks[self.final_name](nodes[(0, depth - 1)], None)


@register("smp_unetplusplus")
class ResNetUnetPlusPlus(SmpEncoderDecoder):
    """U-Net++ with a ResNet encoder returning logits ``(N, classes, H, W)`` for input
    ``(N, in_channels, H, W)``; state_dict-compatible with ``smp.UnetPlusPlus`` (module doc)."""

    smp_class: ClassVar[str] = "UnetPlusPlus"
    decoder_class = NestedDecoder
