"""SIGKILL the whole job (tiles, then merge and vectorise) at many moments; restart each time.

``scripts/inference.py`` runs on a small two-region basemap; the job is killed at seeded-random
moments and restarted with the same arguments until it finishes. Most kills land through the
opt-in crash points of :mod:`tilecast.run.killpoints` (``TILECAST_KILL_AT=name:N``), one per
step: reading, inferring, writing a tile (before the write, after the file is in place but
before the run log lists it), committing a file (a temporary complete, not yet renamed),
checkpointing the run log, merging (a tile pasted, a block written), vectorising (a region,
the GeoPackage); the others are plain SIGKILLs from outside at a random moment after the job
has planned its tiles, classified by the last phase the process logged. The test prints
(``pytest -s``) how many kills landed in which phase.

In the end the tile files are byte-identical to an uninterrupted run's, the merged mosaics
pixel-identical, the polygons identical (geometry and attributes), no tile lost, none listed as
done without its file, and no visible partial file: the hidden ``.name.*`` temporaries a killed
writer leaves are cleaned by the next run.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import test_job_resume
import yaml
from rts_support import make_config, smooth_rgb, tile_hashes, tiles_for, write_quad_basemap

from tilecast.apps.rts.tilelist import format_tile_list
from tilecast.grid import Tile
from tilecast.run.killpoints import ENV

REPO = Path(__file__).resolve().parents[2]
SEED = 20261122

#: Crash points the schedule visits, in the order the job reaches them, with the phase each
#: belongs to. ``tiles`` points are drawn among the tiles still to do.
TILE_POINTS = [
    ("read.tile", "reading"),
    ("infer.tile", "inferring"),
    ("write.tile", "writing tiles"),
    ("storage.commit", "committing a file"),  # probe, tile or run log: before the rename
    ("write.done", "writing tiles"),  # file in place, not yet in the run log
    ("runlog.write", "updating the run log"),
]
#: (point, how many times a finished-tiles run reaches it, phase)
PRODUCT_POINTS = [
    ("merge.tile", None, "merging"),  # None: once per tile
    ("merge.block", 2, "merging"),  # two regions, one block each
    ("vector.region", 2, "vectorising"),
    ("vector.write", 1, "vectorising"),
]
N_TIMED = 4


def write_inputs(root: Path, bundle: Path) -> tuple[Path, Path, int]:
    image = smooth_rgb(23, 256, 256)
    basemap = write_quad_basemap(root / "basemap", image, quad=128)
    tiles = [
        Tile(t.tile_id, t.minx, t.miny, t.maxx, t.maxy, "west" if i % 7 < 3 else "east")
        for i, t in enumerate(tiles_for(image, tile_size=64, stride=32))
    ]
    tile_list = root / "tiles.csv"
    tile_list.write_text(format_tile_list(tiles))
    configs = []
    for name in ("reference", "killed"):
        config = make_config(
            bundle=bundle,
            basemap=basemap,
            out=root / name,
            checkpoint_every=3,
            workers=2,
            threshold=0.5,
        ).model_dump(mode="json")
        # min_area_m2 keeps the ~15 polygons of substance (measuring ~300 specks of a few
        # pixels would be most of the run's time)
        config["products"] = {"merge": True, "vectorize": True, "report": False, "min_area_m2": 100}
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        configs.append(path)
    return configs[0], tile_list, len(tiles)


def launch(config: Path, tile_list: Path, log: Path, kill_at: str | None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop(ENV, None)
    if kill_at:
        env[ENV] = kill_at
    return subprocess.Popen(
        [
            *(sys.executable, str(REPO / "scripts" / "inference.py")),
            *("--config", str(config), "--tile-list", str(tile_list)),
        ],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def phase_of(text: str) -> str:
    """The phase a killed run was in, from what it logged last."""
    if "killpoint" in text:
        return "named"
    if "run log    " not in text:
        return "reading/inferring/writing" if "tiles planned" in text else "starting"
    if "mosaics written" not in text or text.count("mosaics written") < 2:
        return "merging"
    return "vectorising"


def todo_count(out: Path, n_tiles: int) -> int:
    log = out / "logs" / "inference_log.json"
    if not log.exists():
        return n_tiles
    return n_tiles - len(json.loads(log.read_text())["tiles"])


def hidden(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*") if p.name != ".gitignore")


def visible_files(out: Path, folder: str) -> list[Path]:
    root = out / folder
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def check_visible_outputs_whole(out: Path) -> None:
    """Every visible tile and mosaic opens and reads; the GeoPackage (if any) reads."""
    for path in visible_files(out, "tiles") + visible_files(out, "merged"):
        with rasterio.open(path) as src:
            src.read()
    for path in visible_files(out, "vectors"):
        gpd.read_file(path)


def wait_for(proc: subprocess.Popen, log: Path, text: str) -> None:
    """Return once the job has logged ``text`` (or exited)."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.05)


#: Logged once the tiles are planned (start-up, the imports and the bundle's checks, is most of
#: a short run; a kill there proves little), and printed once they are all committed.
PLANNED, TILES_DONE = "tiles planned", "run log    "


def run_to_end(config: Path, tile_list: Path, log: Path) -> tuple[float, float]:
    """Run uninterrupted; the seconds the tiles took after planning, and the products."""
    proc = launch(config, tile_list, log, None)
    wait_for(proc, log, PLANNED)
    start = time.monotonic()
    wait_for(proc, log, TILES_DONE)
    tiles_done = time.monotonic()
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    return tiles_done - start, time.monotonic() - tiles_done


def kill_after(proc: subprocess.Popen, delay: float) -> None:
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.slow
def test_sigkill_at_random_moments_in_every_phase(make_bundle, tmp_path):
    rng = random.Random(SEED)
    config_ref, tile_list, n_tiles = write_inputs(tmp_path, make_bundle("export"))
    config = tmp_path / "killed.yaml"
    tiles_s, products_s = run_to_end(config_ref, tile_list, tmp_path / "reference.log")
    reference = tmp_path / "reference"
    out = tmp_path / "killed"

    # the schedule: every tile point (each drawn among the tiles left, so each lands), half of
    # the timed kills (drawn within the time the tiles left take: they land in the tiles or
    # just after), then every products point with the other timed kills among them
    schedule: list[tuple[str, str | None]] = [(phase, name) for name, phase in TILE_POINTS]
    schedule += [("timed", None)] * (N_TIMED // 2)
    products: list[tuple[str, str | None]] = [(phase, name) for name, _, phase in PRODUCT_POINTS]
    for _ in range(N_TIMED - N_TIMED // 2):
        products.insert(rng.randrange(len(products) + 1), ("timed", None))
    schedule += products

    landed: collections.Counter[str] = collections.Counter()
    missed: list[str] = []
    for number, (phase, name) in enumerate(schedule):
        log = tmp_path / f"run{number:02d}.log"
        todo = todo_count(out, n_tiles)
        if name is None:
            proc = launch(config, tile_list, log, None)
            wait_for(proc, log, PLANNED)
            if todo:
                kill_after(proc, rng.uniform(0.1, 0.9) * tiles_s * todo / n_tiles)
            else:
                kill_after(proc, rng.uniform(0.0, 1.0) * products_s)
        else:
            if any(name == p for p, _ in TILE_POINTS):
                if todo == 0:
                    missed.append(f"{name} (no tile left)")
                    continue
                limit = max(1, todo // 3) if name != "runlog.write" else max(1, todo // 9)
            else:
                times = dict((p, t) for p, t, _ in PRODUCT_POINTS)[name]
                limit = times or n_tiles
            nth = rng.randint(1, limit)
            proc = launch(config, tile_list, log, f"{name}:{nth}")
            proc.wait(timeout=300)
            phase = f"{phase} ({name}:{nth})"
        text = log.read_text()
        if proc.returncode == -signal.SIGKILL:
            if name is None:
                phase = f"timed ({phase_of(text)})"
            landed[phase] += 1
        else:
            assert proc.returncode == 0, text[-3000:]
            missed.append(phase)
        # after every kill: the run log tells the truth, every visible output is whole
        if (out / "logs" / "inference_log.json").exists():
            test_job_resume.assert_log_consistent(out, n_tiles, complete=False)
        check_visible_outputs_whole(out)

    run_to_end(config, tile_list, tmp_path / "final.log")
    report = "\n".join(f"  {n} x {phase}" for phase, n in sorted(landed.items()))
    print(
        f"\n{sum(landed.values())} kills landed ({n_tiles} tiles, "
        f"a clean run: {tiles_s:.1f} s of tiles after planning, {products_s:.1f} s of products):\n"
        f"{report}\n  not landed: {missed or 'none'}"
    )
    assert sum(landed.values()) >= 10, report

    # the tiles: all there, byte-identical, the run log complete and true
    assert tile_hashes(out) == tile_hashes(reference)
    assert len(tile_hashes(out)) == n_tiles
    log = test_job_resume.assert_log_consistent(out, n_tiles, complete=True)
    assert len(log["runs"]) >= 2  # restarts resumed the same log
    ref_log = json.loads((reference / "logs" / "inference_log.json").read_text())
    assert log["tiles"] == ref_log["tiles"]
    assert log["total_rts_area_km2"] == ref_log["total_rts_area_km2"]

    # the mosaics: same files, same pixels
    merged = [p.name for p in visible_files(reference, "merged")]
    assert merged and [p.name for p in visible_files(out, "merged")] == merged
    for name in merged:
        with (
            rasterio.open(reference / "merged" / name) as a,
            rasterio.open(out / "merged" / name) as b,
        ):
            assert a.profile == b.profile and a.tags() == b.tags()
            np.testing.assert_array_equal(a.read(), b.read())

    # the polygons: same geometry and attributes, feature by feature
    gpkg = Path("vectors") / "rts_predictions.gpkg"
    expected, found = gpd.read_file(reference / gpkg), gpd.read_file(out / gpkg)
    assert len(expected) > 0
    assert list(found.columns) == list(expected.columns)
    assert found.drop(columns="geometry").equals(expected.drop(columns="geometry"))
    assert found.geometry.geom_equals_exact(expected.geometry, tolerance=0).all()

    # nothing half-written is visible, and the killed writers' temporaries are gone
    assert hidden(out) == [], "temporaries left by killed runs were not cleaned"


def test_kill_points_are_a_no_op_unless_asked_and_refuse_a_malformed_setting(monkeypatch):
    from tilecast.run import killpoints

    monkeypatch.delenv(ENV, raising=False)
    killpoints.reached("read.tile")  # nothing set: returns
    monkeypatch.setenv(ENV, "merge.block:1")
    killpoints.reached("read.tile")  # another point: returns
    for bad in ("merge.block", "merge.block:0", ":3", "merge.block:x"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ValueError, match=f"{ENV} must be NAME:N with N >= 1"):
            killpoints.reached("merge.block")
