"""The job's config and command line as the launching workflow uses them."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from rts_support import make_config, smooth_rgb, tiles_for, write_quad_basemap

from tilecast.apps.rts.config import parse_config
from tilecast.apps.rts.tilelist import parse_tile_list
from tilecast.cli.main import cli
from tilecast.errors import ContractError

GOOD = {
    "model": {"bundle": "models/rts-demo"},
    "input": {"basemap": "b", "basemap_version": "2025-Q3"},
    "output": {"path": "out"},
    "inference": {"scales": [1.0, 0.5], "tta": "minimal"},
}


def with_change(path: str, value: object) -> str:
    data = json.loads(json.dumps(GOOD))
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return yaml.safe_dump(data)


def test_defaults_follow_the_design():
    c = parse_config(yaml.safe_dump(GOOD))
    assert c.inference.tile_size == 512 and c.inference.batch_size == 64
    assert c.inference.threshold is None and c.model.precision == "fp32"
    assert c.input.tile_list_crs == "EPSG:3413"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("inference.batchsize", 8, "inference.batchsize: Extra inputs are not permitted"),
        (
            "inference.batch_size",
            0,
            "inference.batch_size: Input should be greater than or equal to 1",
        ),
        (
            "inference.threshold",
            1.5,
            "inference.threshold: Input should be less than or equal to 1",
        ),
        ("inference.tta", "full", "inference.tta: Input should be 'none', 'minimal' or 'standard'"),
        ("model.precision", "int8", "model.precision"),
        ("inference.scales", [1.0, 0.3], "0.3"),
        ("inference.scales", [1.0, 1.0], "distinct"),
        ("output.path", "", "output.path"),
    ],
)
def test_bad_configs_name_the_key(path, value, message):
    with pytest.raises(ContractError) as err:
        parse_config(with_change(path, value), source="configs/x.yaml")
    assert message in str(err.value) and "configs/x.yaml" in str(err.value)


def test_missing_section_is_named():
    data = dict(GOOD)
    del data["output"]
    with pytest.raises(ContractError, match="output: Field required"):
        parse_config(yaml.safe_dump(data))


def test_rts_grid_then_run_from_the_command_line(make_bundle, tmp_path):
    image = smooth_rgb(3, 200, 260)
    basemap = write_quad_basemap(tmp_path / "basemap", image, quad=128)
    runner = CliRunner()
    grid = runner.invoke(
        cli,
        [
            "rts",
            "grid",
            "--basemap",
            str(basemap),
            "--tile-size",
            "64",
            "--stride",
            "32",
            "--region",
            "north",
            "--out",
            str(tmp_path / "tiles.csv"),
        ],
    )
    assert grid.exit_code == 0, grid.output
    tiles = parse_tile_list((tmp_path / "tiles.csv").read_text())
    assert [t.tile_id for t in tiles] == [
        t.tile_id for t in tiles_for(image, tile_size=64, stride=32)
    ]
    assert {t.region for t in tiles} == {"north"}
    config = make_config(bundle=make_bundle("export"), basemap=basemap, out=tmp_path / "out")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    run = runner.invoke(
        cli,
        [
            "rts",
            "run",
            "--config",
            str(tmp_path / "c.yaml"),
            "--tile-list",
            str(tmp_path / "tiles.csv"),
        ],
    )
    assert run.exit_code == 0, run.output
    assert f"{len(tiles)} tiles written" in run.output
    assert len(list((tmp_path / "out" / "tiles").glob("*.tif"))) == len(tiles)


def test_bad_tile_list_is_one_clear_line(make_bundle, tmp_path):
    (tmp_path / "tiles.csv").write_text("tile_id,minx,miny,maxx,maxy\na,0,0,1,1\nb,0,0,x,1\n")
    config = make_config(bundle=make_bundle("export"), basemap=tmp_path, out=tmp_path / "out")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    run = CliRunner().invoke(
        cli,
        [
            "rts",
            "run",
            "--config",
            str(tmp_path / "c.yaml"),
            "--tile-list",
            str(tmp_path / "tiles.csv"),
        ],
    )
    assert run.exit_code == 1
    assert "line 3" in run.output and "Traceback" not in run.output
