import pytest

from tilecast.demo.scene import generate_scene


@pytest.fixture(scope="session")
def scene():
    """A 768 x 768 scene with a NoData edge and a dozen slumps."""
    return generate_scene(seed=7, height=768, width=768, n_slumps=12)
