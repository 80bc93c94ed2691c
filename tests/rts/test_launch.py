"""``tilecast rts launch`` on a real local Ray cluster: a head and a second node process started
here, with a custom resource standing in for GPUs so shards are scheduled by resources.

The judge is a single-process run of the same job: the shards' tiles and the products made as
Ray tasks must be byte-identical to it, also when a Ray worker is SIGKILLed in the middle of a
shard (Ray retries the task; the shard's run log makes the retry resume).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rts_support import make_config, smooth_rgb, tile_hashes, tiles_for, write_quad_basemap

from tilecast.apps.rts.job import RtsJob
from tilecast.apps.rts.launch import LaunchSettings, launch
from tilecast.apps.rts.products import make_products

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = pytest.mark.slow

GPU = "tilecast_test_gpu"  # a custom resource: 2 on the head, 1 on the second node


@pytest.fixture(scope="module")
def cluster():
    """A head (2 CPUs, 2 'GPUs') and a second node process (1 CPU, 1 'GPU') on this machine.

    They listen on the machine's own interface: a Ray driver rewrites a 127.0.0.1 cluster
    address to the node's IP and then cannot reach a loopback-only GCS.
    """
    head = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "resources": {GPU: 2}, "include_dashboard": False},
    )
    head.add_node(num_cpus=1, resources={GPU: 1})
    head.wait_for_nodes()
    try:
        yield head
    finally:
        head.shutdown()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("launch")
    image = smooth_rgb(21, 256, 384)
    image[:, :40, :60] = 0  # a NoData corner
    basemap = write_quad_basemap(root / "basemap", image, quad=128)
    return basemap, tiles_for(image, tile_size=64, stride=64)


def config_for(bundle, basemap, out, **extra):
    config = make_config(
        bundle=bundle,
        basemap=basemap,
        out=out,
        workers=1,
        checkpoint_every=2,
        tile_encoding="uint16",
        **extra,
    )
    return config.model_copy(
        update={
            "products": config.products.model_copy(update={"report": False, "min_area_m2": 0.0})
        }
    )


@pytest.fixture(scope="module")
def single(scene, make_bundle, tmp_path_factory):
    """The judge: the same job in one process, and its products."""
    basemap, tiles = scene
    out = tmp_path_factory.mktemp("single") / "out"
    config = config_for(make_bundle("export"), basemap, out)
    assert RtsJob(config, tiles).run().complete
    make_products(str(out), config.products)
    return out


def assert_same_products(out: Path, reference: Path) -> None:
    """Mosaics byte for byte; the GeoPackage read back (SQLite stamps its change time)."""
    import geopandas as gpd
    from geopandas.testing import assert_geodataframe_equal

    def mosaics(root: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((root / "merged").glob("region_*.tif"))}

    assert mosaics(out) and mosaics(out) == mosaics(reference)
    gpkg = "vectors/rts_predictions.gpkg"
    a, b = gpd.read_file(out / gpkg), gpd.read_file(reference / gpkg)
    assert len(a) > 0
    assert_geodataframe_equal(a, b)


def shard_logs(out: Path) -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((out / "logs").glob("inference_log.*"))
    }


def test_four_shards_on_two_nodes_equal_one_process(cluster, scene, single, make_bundle, tmp_path):
    basemap, tiles = scene
    out = tmp_path / "out"
    config = config_for(make_bundle("export"), basemap, out)
    result = launch(
        config,
        tiles,
        LaunchSettings(
            shards=4, address=cluster.address, cpus_per_shard=1, resources={GPU: 1}, poll_s=0.5
        ),
    )
    assert result.success and (out / "_SUCCESS").exists()
    assert len(result.shards) == 4 and sum(result.tiles_per_shard) == len(tiles)
    assert tile_hashes(out) == tile_hashes(single)
    assert_same_products(out, single)
    # every tile in exactly one shard's log
    logs = shard_logs(out)
    assert len(logs) == 4
    listed = [t for log in logs.values() for t in log["tiles"]]
    assert sorted(listed) == sorted(t.tile_id for t in tiles)


def test_a_worker_killed_mid_shard_is_retried_and_resumes(
    cluster, scene, single, make_bundle, tmp_path, monkeypatch
):
    basemap, tiles = scene
    out = tmp_path / "out"
    marker = tmp_path / "killed-once"
    # the first shard to commit its 3rd tile SIGKILLs its Ray worker (once: the retry runs on)
    monkeypatch.setenv("TILECAST_KILL_AT", "write.done:3")
    monkeypatch.setenv("TILECAST_KILL_ONCE", str(marker))
    config = config_for(make_bundle("export"), basemap, out)
    result = launch(
        config,
        tiles,
        LaunchSettings(
            shards=4, address=cluster.address, resources={GPU: 1}, max_retries=2, poll_s=0.5
        ),
    )
    assert marker.exists(), "no worker was killed: the test did not test a retry"
    assert result.success
    assert tile_hashes(out) == tile_hashes(single)
    assert_same_products(out, single)
    logs = shard_logs(out)
    listed = [t for log in logs.values() for t in log["tiles"]]
    assert sorted(listed) == sorted(t.tile_id for t in tiles)  # none lost, none twice
    restarted = [log for log in logs.values() if len(log["runs"]) > 1]
    assert len(restarted) == 1  # the killed shard, run again
    assert restarted[0]["runs"][-1]["tiles_already_recorded"] >= 2  # resumed, not restarted
    assert not list((out / "tiles").glob(".*"))  # no temporary left behind


def test_one_region_in_bands_on_ray_equals_one_process(
    cluster, scene, single, make_bundle, tmp_path, caplog
):
    """The products of one region cut into 3 bands of 64 px rows (merge and polygons), as Ray
    tasks on both nodes: the same COG bytes and features as one process with those blocks."""
    import shutil

    from tilecast.apps.rts.launch import _products_on_ray
    from tilecast.merge import merge_output
    from tilecast.vector.job import vectorize_output

    basemap, _ = scene
    outputs = {}
    for name in ("ray", "one"):
        outputs[name] = tmp_path / name
        for folder in ("tiles", "logs"):
            shutil.copytree(single / folder, outputs[name] / folder)
    config = config_for(make_bundle("export"), basemap, outputs["ray"])
    merge_output(str(outputs["one"]), block=64)
    vectorize_output(str(outputs["one"]), block=64)
    caplog.set_level("INFO", logger="tilecast")
    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        made = _products_on_ray(
            ray, config, str(outputs["ray"]), bands=3, merge_block=64, vector_block=64
        )
    finally:
        ray.shutdown()
    assert "vectors/rts_predictions.gpkg" in made
    assert "(3 bands)" in caplog.text  # the region was cut: the test tests bands
    assert_same_products(outputs["ray"], outputs["one"])


def test_a_missing_extra_is_one_sentence():
    from tilecast.optional import MissingExtraError, import_optional

    with pytest.raises(MissingExtraError) as err:
        import_optional("tilecast_no_such_module", extra="ray", purpose="tilecast rts launch")
    assert str(err.value).startswith("tilecast rts launch needs tilecast_no_such_module")
    assert str(err.value).endswith("pip install 'tilecast[ray]'")
