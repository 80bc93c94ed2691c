import numpy as np
import pytest
import shapely
from rasterio.features import rasterize

from tilecast.demo.metrics import label_components
from tilecast.demo.scene import (
    MAX_SLUMP_PX,
    MIN_SLUMP_PX,
    PEEL_PLATEAU_ORIGIN,
    generate_scene,
)
from tilecast.errors import InputError


def test_same_seed_gives_identical_scene(scene):
    again = generate_scene(seed=7, height=768, width=768, n_slumps=12)
    assert np.array_equal(again.image, scene.image)
    assert np.array_equal(again.truth, scene.truth)
    assert len(again.slumps) == len(scene.slumps)
    assert all(a.equals_exact(b, 0.0) for a, b in zip(again.slumps, scene.slumps, strict=True))


def test_different_seed_gives_different_scene(scene):
    other = generate_scene(seed=8, height=768, width=768, n_slumps=12)
    assert not np.array_equal(other.image, scene.image)
    assert not np.array_equal(other.truth, scene.truth)


def test_layout_types_and_georeferencing(scene):
    assert scene.image.shape == (3, 768, 768) and scene.image.dtype == np.uint8
    assert scene.truth.shape == (768, 768) and scene.truth.dtype == np.uint8
    assert set(np.unique(scene.truth)) <= {0, 1, 255}
    assert scene.crs == "EPSG:3413"
    assert scene.nodata == 0
    assert (scene.transform.a, scene.transform.e) == (3.0, -3.0)
    assert (scene.transform.b, scene.transform.d) == (0.0, 0.0)
    assert (scene.transform.c, scene.transform.f) == PEEL_PLATEAU_ORIGIN
    assert PEEL_PLATEAU_ORIGIN[0] % 3 == 0 and PEEL_PLATEAU_ORIGIN[1] % 3 == 0


def test_default_origin_lies_in_the_arctic_band():
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:3413", "EPSG:4326", always_xy=True).transform(
        *PEEL_PLATEAU_ORIGIN
    )
    assert 60 <= lat <= 74
    assert -140 < lon < -130


def test_custom_origin_moves_the_scene():
    moved = generate_scene(seed=1, height=64, width=64, origin=(300.0, 600.0))
    assert (moved.transform.c, moved.transform.f) == (300.0, 600.0)


def test_nodata_pixels_are_zero_in_every_band_and_255_in_truth(scene):
    nodata = np.all(scene.image == 0, axis=0)
    assert nodata.sum() > 0.01 * nodata.size  # an edge on one or two sides
    assert np.array_equal(nodata, scene.truth == 255)
    assert np.array_equal(nodata, ~scene.valid)


def test_nodata_lies_along_the_scene_edges(scene):
    nodata = scene.truth == 255
    edges = [nodata[0], nodata[-1], nodata[:, 0], nodata[:, -1]]
    assert any(edge.mean() > 0.5 for edge in edges)
    assert not nodata[384 - 20 : 384 + 20, 384 - 20 : 384 + 20].any()


def test_valid_pixels_are_never_zero_in_any_band(scene):
    valid = scene.truth != 255
    assert (scene.image[:, valid] > 0).all()


def test_nodata_margin_can_be_switched_off():
    plain = generate_scene(seed=7, height=256, width=256, nodata_margin=False)
    assert not (plain.truth == 255).any()
    assert (plain.image > 0).all()


def test_every_polygon_is_one_truth_component_inside_valid_data(scene):
    _, count = label_components(scene.truth == 1)
    assert count == len(scene.slumps) >= 8


def test_slumps_have_the_documented_size_range():
    big = generate_scene(seed=11, height=1024, width=1024, n_slumps=20)
    extents = []
    for polygon in big.slumps:
        minx, miny, maxx, maxy = polygon.bounds
        extents.append(max(maxx - minx, maxy - miny) / 3.0)
    assert min(extents) >= MIN_SLUMP_PX * 0.8
    assert max(extents) <= MAX_SLUMP_PX * 1.2
    assert np.median(extents) < 170  # most small-medium (< 500 m)


def test_truth_polygons_rasterise_to_the_truth_mask(scene):
    burned = rasterize(
        [(p, 1) for p in scene.slumps],
        out_shape=scene.truth.shape,
        transform=scene.transform,
        fill=0,
        dtype="uint8",
    ).astype(bool)
    truth = scene.truth == 1
    iou = (burned & truth).sum() / (burned | truth).sum()
    assert iou > 0.95


def test_polygons_are_valid_disjoint_and_off_nodata(scene):
    assert all(p.is_valid and p.area > 0 for p in scene.slumps)
    union_area = shapely.union_all(scene.slumps).area
    assert union_area == pytest.approx(sum(p.area for p in scene.slumps), rel=1e-9)
    assert not (scene.truth[scene.truth == 255] == 1).any()


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def test_slumps_have_a_bright_headwall_and_a_dark_floor(scene):
    """Within each slump the brightest tenth (the headwall scar) is brighter than the tundra
    around it, and the typical slump pixel (the floor) is darker."""
    brightness = scene.image.astype(np.float64).mean(axis=0)
    labels, count = label_components(scene.truth == 1)
    valid = scene.truth != 255
    head_gain, floor_gain = [], []
    for k in range(1, count + 1):
        inside = labels == k
        ring = _dilate(inside, 8) & ~_dilate(inside, 2) & valid & (scene.truth == 0)
        values = np.sort(brightness[inside])
        top = values[int(0.9 * values.size) :].mean()
        head_gain.append(top - np.median(brightness[ring]))
        floor_gain.append(np.median(values) - np.median(brightness[ring]))
    assert np.mean(head_gain) > 30
    assert np.mean(floor_gain) < -8
    assert np.mean(np.array(floor_gain) < 0) > 0.8


def test_default_slump_count_scales_with_area():
    small = generate_scene(seed=3, height=512, width=512)
    assert 1 <= len(small.slumps) <= 3


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"seed": -1, "height": 64, "width": 64}, "seed"),
        ({"seed": 0, "height": 10, "width": 64}, "height"),
        ({"seed": 0, "height": 64, "width": 64.0}, "width"),
        ({"seed": 0, "height": 64, "width": 64, "n_slumps": -3}, "n_slumps"),
    ],
)
def test_bad_arguments_are_refused(kwargs, name):
    with pytest.raises(InputError, match=name):
        generate_scene(**kwargs)


@pytest.mark.slow
def test_a_demo_sized_scene_is_made_whole():
    """The demo's 2048 px scene (its generation time is a figure for bench/, not a test)."""
    big = generate_scene(seed=5, height=2048, width=2048)
    assert big.image.shape == (3, 2048, 2048) and big.image.dtype == np.uint8
    assert len(big.slumps) >= 1 and big.truth.shape == (2048, 2048)
