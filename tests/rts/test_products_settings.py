"""``rts products`` follows the products settings the run logs recorded, not silent defaults."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import yaml
from click.testing import CliRunner
from geopandas.testing import assert_geodataframe_equal
from rts_support import make_config, smooth_rgb, tiles_for, write_quad_basemap

from tilecast.apps.rts.split import split_tiles
from tilecast.apps.rts.tilelist import format_tile_list
from tilecast.cli.rts import rts
from tilecast.run.runlogs import RecordedProducts, RunLogError, settle_products

MIN_AREA = 400.0  # drops some of the small run's polygons (checked below)
PRODUCTS = {"min_area_m2": MIN_AREA, "report": False}


def write_config(path: Path, out: Path, inputs: dict, products: dict) -> Path:
    config = make_config(bundle=inputs["bundle"], basemap=inputs["basemap"], out=out, threshold=0.5)
    data = config.model_dump(mode="json")
    data["products"] = products
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(*args: str):
    return CliRunner().invoke(rts, [str(a) for a in args])


def polygons(out: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(out / "vectors" / "rts_predictions.gpkg")


def logs_of(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "logs").glob("*.json"))}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, make_bundle):
    root = tmp_path_factory.mktemp("products-settings")
    image = smooth_rgb(5, 128, 192)
    tiles = tiles_for(image, tile_size=64, stride=32)
    halves = split_tiles(tiles, 2)
    lists = {}
    for name, part in [("all", tiles), ("a", halves[0]), ("b", halves[1])]:
        lists[name] = root / f"tiles_{name}.csv"
        lists[name].write_text(format_tile_list(part))
    return {
        "root": root,
        "bundle": make_bundle("export"),
        "basemap": write_quad_basemap(root / "basemap", image, quad=128),
        "lists": lists,
    }


@pytest.fixture(scope="module")
def unsharded(inputs):
    """The job run once with its config: tiles and products in one go."""
    out = inputs["root"] / "unsharded"
    config = write_config(inputs["root"] / "unsharded.yaml", out, inputs, PRODUCTS)
    result = invoke("run", "--config", config, "--tile-list", inputs["lists"]["all"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def sharded(inputs):
    """Two shards of the same list into one output, with the same config; no products yet."""
    out = inputs["root"] / "sharded"
    config = write_config(inputs["root"] / "sharded.yaml", out, inputs, PRODUCTS)
    for shard in ("a", "b"):
        result = invoke(
            "run", "--config", config, "--tile-list", inputs["lists"][shard], "--shard", shard
        )
        assert result.exit_code == 0, result.output
    assert not (out / "vectors").exists()
    return out


def fresh_copy(sharded: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(sharded, out)
    return out


def test_every_run_log_records_the_products_settings(sharded):
    logs = logs_of(sharded)
    assert sorted(logs) == ["inference_log.a.json", "inference_log.b.json"]
    for log in logs.values():
        assert log["products"] == {
            "merge": True,
            "vectorize": True,
            "report": False,
            "merge_strategy": "auto",
            "memory_budget_mb": 2048,
            "min_area_m2": MIN_AREA,
        }


def test_products_without_config_follow_the_recorded_settings(unsharded, sharded, tmp_path):
    out = fresh_copy(sharded, tmp_path)
    result = invoke("products", "--output", out)
    assert result.exit_code == 0, result.output
    assert_geodataframe_equal(polygons(out), polygons(unsharded))
    assert not (out / "report").exists()  # report: false was recorded too
    assert (out / "_SUCCESS").exists()
    # the record mattered: the defaults (min_area_m2 0) give more polygons
    explicit = invoke("products", "--output", out, "--min-area-m2", "0")
    assert explicit.exit_code == 0, explicit.output
    assert len(polygons(out)) > len(polygons(unsharded)) > 0


def test_a_config_that_disagrees_is_refused_unless_an_option_decides(inputs, sharded, tmp_path):
    out = fresh_copy(sharded, tmp_path)
    other = write_config(tmp_path / "other.yaml", out, inputs, {"min_area_m2": 0.0})
    refused = invoke("products", "--output", out, "--config", other)
    assert refused.exit_code == 1
    assert (
        f"products.min_area_m2: the run logs recorded {MIN_AREA}, --config says 0.0; pass "
        "--min-area-m2 to override the record" in refused.output
    )
    assert not (out / "merged").exists()  # refused before any product
    chosen = invoke("products", "--output", out, "--config", other, "--min-area-m2", "0")
    assert chosen.exit_code == 0, chosen.output
    # a config that only sets how the merge runs is fine: the result does not change
    how = write_config(tmp_path / "how.yaml", out, inputs, {"memory_budget_mb": 64})
    assert (
        invoke("products", "--output", out, "--config", how, "--skip", "vectorize").exit_code == 0
    )


def test_shards_that_disagree_are_refused_naming_the_key_and_logs(
    inputs, sharded, tmp_path, caplog
):
    out = fresh_copy(sharded, tmp_path)
    changed = write_config(tmp_path / "b.yaml", out, inputs, {**PRODUCTS, "min_area_m2": 10.0})
    with caplog.at_level(logging.WARNING):
        rerun = invoke(
            "run", "--config", changed, "--tile-list", inputs["lists"]["b"], "--shard", "b"
        )
    assert rerun.exit_code == 0, rerun.output
    assert "products.min_area_m2 was 400.0 in the earlier run, this run's config says 10.0" in (
        caplog.text
    )
    logs = logs_of(out)
    assert logs["inference_log.b.json"]["products"]["min_area_m2"] == 10.0  # the restart's
    assert len(logs["inference_log.b.json"]["runs"]) == 2
    refused = invoke("products", "--output", out)
    assert refused.exit_code == 1
    assert "products.min_area_m2: the run logs disagree" in refused.output
    assert f"{out}/logs/inference_log.a.json: 400.0" in refused.output
    assert f"{out}/logs/inference_log.b.json: 10.0" in refused.output
    assert invoke("products", "--output", out, "--min-area-m2", "400").exit_code == 0


def test_logs_without_a_record_fall_back_with_a_warning(
    inputs, unsharded, sharded, tmp_path, caplog
):
    out = fresh_copy(sharded, tmp_path)
    for path in (out / "logs").glob("*.json"):
        log = json.loads(path.read_text())
        del log["products"]  # as a run log written before they were recorded
        path.write_text(json.dumps(log))
    with caplog.at_level(logging.WARNING):
        result = invoke("products", "--output", out)
    assert result.exit_code == 0, result.output
    assert (
        "inference_log.b.json: no products settings recorded (written before tilecast recorded "
        "them); using the defaults" in caplog.text
    )
    assert (out / "report" / "index.html").exists()  # the defaults: report on, no min area
    assert len(polygons(out)) > len(polygons(unsharded))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        with_config = invoke(
            "products",
            "--output",
            out,
            "--config",
            write_config(tmp_path / "c.yaml", out, inputs, PRODUCTS),
        )
    assert with_config.exit_code == 0, with_config.output
    assert "using --config for them" in caplog.text
    assert_geodataframe_equal(polygons(out), polygons(unsharded))
    # a restart of an old-style shard records its config's settings from then on
    config = write_config(tmp_path / "a.yaml", out, inputs, PRODUCTS)
    rerun = invoke("run", "--config", config, "--tile-list", inputs["lists"]["a"], "--shard", "a")
    assert rerun.exit_code == 0, rerun.output
    logs = logs_of(out)
    assert logs["inference_log.a.json"]["products"]["min_area_m2"] == MIN_AREA
    assert logs["inference_log.b.json"].get("products") is None


def recorded(settings=None, disagreements=None, unrecorded=()) -> RecordedProducts:
    return RecordedProducts(("l1", "l2"), settings or {}, disagreements or {}, unrecorded)


def test_settle_products_order_of_precedence():
    options = {"min_area_m2": "--min-area-m2"}
    rec = recorded({"min_area_m2": 1000.0, "merge_strategy": "auto", "report": False})
    assert settle_products(rec, config=None, explicit={}, options=options) == {
        "min_area_m2": 1000.0,
        "merge_strategy": "auto",
        "report": False,
    }
    # an option wins over the record; a config key the record lacks is taken
    assert settle_products(
        rec, config={"vectorize": False}, explicit={"min_area_m2": 5.0}, options=options
    ) == {"min_area_m2": 5.0, "merge_strategy": "auto", "report": False, "vectorize": False}
    # a config that agrees is fine; one on how the merge runs wins
    assert (
        settle_products(
            rec,
            config={"min_area_m2": 1000, "merge_strategy": "streaming"},
            explicit={},
            options={},
        )["merge_strategy"]
        == "streaming"
    )
    with pytest.raises(RunLogError, match=r"products\.report: the run logs recorded False"):
        settle_products(rec, config={"report": True}, explicit={}, options=options)
    split = recorded(disagreements={"min_area_m2": {"l1": 1.0, "l2": 2.0}})
    with pytest.raises(RunLogError, match=r"disagree \(l1: 1.0; l2: 2.0\); pass --min-area-m2"):
        settle_products(split, config=None, explicit={}, options=options)
    assert settle_products(split, config=None, explicit={"min_area_m2": 2.0}, options=options) == {
        "min_area_m2": 2.0
    }
