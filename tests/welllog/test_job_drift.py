"""Input drift in the well-log job: scans like the training scans pass quietly; a negative
scan (white ink on black, as some scanners export) is flagged in the summary, or stops the job
before it is digitised with ``input_drift="fail"``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from welllog_support import GR, draw_scan, manifest_csv, oracle_digitiser, record, write_png

from tilecast.apps.welllog.job import WelllogJob
from tilecast.apps.welllog.manifest import read_manifest
from tilecast.bundle import load_bundle
from tilecast.errors import InputDriftError
from tilecast.io import storage

DEMO = Path(__file__).resolve().parents[2] / "models" / "welllog-demo"
H, W = 96, 640


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEMO)


def _batch(root: Path, *, negative: bool) -> str:
    records = []
    for i in range(2):
        rec = record(
            scan_uri=f"{root}/scans/scan{i}.png",
            uwi=f"42-001-{i:05d}",
            scan_id=f"S{i}",
            top=1000.0,
            bottom=1000.0 + (W - 1) * 0.05,
            curves=(GR,),
        )
        image = draw_scan(H, W, n_curves=1, seed=i)
        write_png(rec.scan_uri, (255 - image) if negative else image)
        records.append(rec)
    storage.write_text(f"{root}/manifest.csv", manifest_csv(records))
    return f"{root}/manifest.csv"


def test_scans_like_training_are_not_flagged(bundle, tmp_path):
    summary = WelllogJob(bundle, str(tmp_path / "out"), digitiser=oracle_digitiser).run(
        read_manifest(_batch(tmp_path, negative=False))
    )
    assert summary.input_drift is not None and summary.input_drift.judged
    assert summary.input_drift.flags == (), summary.input_drift.summary()


def test_a_negative_scan_is_flagged_and_fail_stops_before_digitising(bundle, tmp_path):
    manifest = read_manifest(_batch(tmp_path, negative=True))
    summary = WelllogJob(bundle, str(tmp_path / "warn"), digitiser=oracle_digitiser).run(manifest)
    assert [f.kind for f in summary.input_drift.flags] == ["mean"]
    assert "std below" in summary.input_drift.summary()
    calls = []

    def digitiser(images, recs, *, nodata=None):
        calls.append(len(images))
        return oracle_digitiser(images, recs, nodata=nodata)

    job = WelllogJob(bundle, str(tmp_path / "fail"), digitiser=digitiser, input_drift="fail")
    with pytest.raises(InputDriftError, match="std below"):
        job.run(manifest)
    assert calls == [] and not list((tmp_path / "fail").rglob("*.las"))
    assert np.isfinite(summary.input_drift.rows[0].mean)
