"""The batched predictor: TTA inversion, scale fusion, out-of-memory handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tilecast.predict.batched import BatchedPredictor, TileInputs
from tilecast.predict.views import TTA_SETS, tta_views


class Asymmetric(torch.nn.Module):
    """A fixed conv with an asymmetric kernel: its output changes under every flip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 5, padding=2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.arange(75, dtype=torch.float32).view(1, 3, 5, 5) / 400 - 0.1
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def tiles(n: int, *, size: int = 32, scales: int = 1, seed: int = 0) -> list[TileInputs]:
    rng = np.random.default_rng(seed)
    return [
        TileInputs(
            key=i,
            arrays=rng.normal(size=(scales, 3, size, size)).astype(np.float32),
            context_sizes=(size,) * scales,
            tile_size=size,
            valid=np.ones((size, size), bool),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("setting", ["minimal", "standard"])
def test_tta_inversion_is_exact_for_an_asymmetric_model(setting):
    model = Asymmetric().eval()
    inputs = tiles(3)
    predictor = BatchedPredictor(
        model, activate=torch.sigmoid, views=tta_views(setting), batch_size=4
    )
    outputs = list(predictor.run(inputs))
    flips = {"identity": (), "hflip": (-1,), "vflip": (-2,), "rot180": (-2, -1)}
    for tile, out in zip(inputs, outputs, strict=True):
        x = torch.from_numpy(tile.arrays[0])[None]
        views = []
        for name in TTA_SETS[setting]:
            dims = flips[name]
            xv = torch.flip(x, dims) if dims else x
            with torch.no_grad():
                p = torch.sigmoid(model(xv))[0, 0]
            views.append(torch.flip(p, [d + 0 for d in dims]) if dims else p)
        expected = torch.stack(views).mean(0).numpy()
        np.testing.assert_allclose(out.probability, expected, atol=1e-6)
        identity_only = torch.sigmoid(model(x))[0, 0].detach().numpy()
        assert not np.allclose(out.probability, identity_only, atol=1e-3), "the views must matter"
    assert predictor.passes == 3 * len(TTA_SETS[setting])


def test_scales_fuse_by_maximum_and_record_the_winner():
    class Constant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1]

    arrays = np.zeros((2, 3, 16, 16), np.float32)
    arrays[0, 0, :, :8] = 0.9  # scale 0 wins on the left
    arrays[1, 0, :, 8:] = 0.7  # scale 1 wins on the right
    tile = TileInputs(
        key="t", arrays=arrays, context_sizes=(16, 16), tile_size=16, valid=np.ones((16, 16), bool)
    )
    (out,) = BatchedPredictor(
        Constant(), activate=lambda t: t, views=tta_views("none"), batch_size=3
    ).run([tile])
    np.testing.assert_allclose(out.probability[:, :8], 0.9)
    np.testing.assert_allclose(out.probability[:, 8:], 0.7)
    assert (out.winning_scale[:, :8] == 0).all() and (out.winning_scale[:, 8:] == 1).all()


def test_out_of_memory_halves_the_batch_and_gives_the_same_result():
    class FailsAbove(torch.nn.Module):
        def __init__(self, limit: int) -> None:
            super().__init__()
            self.inner = Asymmetric()
            self.limit = limit

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > self.limit:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.inner(x)

    inputs = tiles(5)
    normal = list(
        BatchedPredictor(
            Asymmetric().eval(), activate=torch.sigmoid, views=tta_views("minimal"), batch_size=8
        ).run(inputs)
    )
    failing = FailsAbove(limit=2).eval()
    failing.inner.load_state_dict(Asymmetric().state_dict())
    predictor = BatchedPredictor(
        failing, activate=torch.sigmoid, views=tta_views("minimal"), batch_size=8, micro_batch=8
    )  # whole batches per call, as on a GPU
    halved = list(predictor.run(inputs))
    assert predictor.batch_size == 2
    for a, b in zip(normal, halved, strict=True):
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-6)


def test_other_errors_are_not_mistaken_for_out_of_memory():
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        list(
            BatchedPredictor(
                Broken(), activate=torch.sigmoid, views=tta_views("none"), batch_size=4
            ).run(tiles(1))
        )


@pytest.mark.parametrize(("model_size", "tile_size", "k"), [(64, 64, 2), (64, 64, 4), (32, 32, 2)])
def test_upsampling_only_the_centre_equals_upsampling_the_whole_context(model_size, tile_size, k):
    from tilecast.predict.batched import context_to_tile

    prob = torch.rand(model_size, model_size, generator=torch.Generator().manual_seed(k))
    context = model_size * k
    offset = (context - tile_size) // 2
    full = torch.nn.functional.interpolate(
        prob[None, None], size=(context, context), mode="bilinear", align_corners=False
    )[0, 0, offset : offset + tile_size, offset : offset + tile_size]
    fast = context_to_tile(prob, context_size=context, tile_size=tile_size)
    assert torch.equal(fast, full)  # bit for bit: the same weights and neighbours


def test_scale_fusion_equals_torch_max_first_index_on_ties():
    from tilecast.predict.batched import fuse_scales

    g = torch.Generator().manual_seed(0)
    maps = [torch.randint(0, 4, (32, 32), generator=g).float() / 4 for _ in range(3)]  # ties
    best, index = fuse_scales(maps)
    ref_best, ref_index = torch.max(torch.stack(maps), dim=0)
    assert torch.equal(best, ref_best) and torch.equal(index.long(), ref_index)
    assert index.dtype == torch.uint8
