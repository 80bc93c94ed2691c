"""The U-Net exports with torch.export with a dynamic batch, height and width."""

import pytest
import torch
from torch.export import Dim, export

from tilecast.models import UNet


def dynamic_shapes():
    return {
        "x": {
            0: Dim("batch", min=1, max=1024),
            2: 32 * Dim("h", min=1, max=512),
            3: 32 * Dim("w", min=1, max=512),
        }
    }


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet(depth=5, widths=[4, 8, 16, 16, 32, 32]).eval()


@pytest.fixture(scope="module")
def program(model):
    return export(model, (torch.randn(2, 3, 64, 96),), dynamic_shapes=dynamic_shapes())


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 128, 64), (2, 3, 96, 160)])
def test_exported_program_matches_eager(model, program, shape):
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = model(x)
    got = program.module()(x)
    assert got.shape == (shape[0], 1, shape[2], shape[3])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_exported_program_refuses_misaligned_input(program):
    with pytest.raises((RuntimeError, AssertionError, ValueError)):
        program.module()(torch.randn(1, 3, 64, 80))


def test_single_stage_height_needs_size_oblivious_export(model, program):
    """torch.export specialises a size of 1: with the plain call, an H or W of exactly 32
    (one cell at the bottleneck) is refused by a guard; exporting under
    ``backed_size_oblivious`` lifts that."""
    x = torch.randn(1, 3, 32, 64)
    with pytest.raises((RuntimeError, AssertionError)):
        program.module()(x)
    with torch.fx.experimental._config.patch(backed_size_oblivious=True):
        oblivious = export(model, (torch.randn(2, 3, 64, 96),), dynamic_shapes=dynamic_shapes())
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(oblivious.module()(x), expected, atol=1e-5, rtol=1e-5)
