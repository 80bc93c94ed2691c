"""The write-back layout: keys, objects, _SUCCESS last, atomic and idempotent commits."""

from __future__ import annotations

import hashlib
import json

import lasio
import numpy as np
import pytest
from welllog_support import draw_scan, oracle_curves, record

from tilecast.apps.welllog.outputs import (
    FILE_NAMES,
    LAYOUT_VERSION,
    SUCCESS_NAME,
    Provenance,
    gap_runs,
    render_outputs,
)
from tilecast.apps.welllog.writeback import (
    ConflictingScanError,
    check_key_part,
    commit_scan,
    is_committed,
    scan_prefix,
    verify_committed,
)
from tilecast.errors import InputError
from tilecast.io import storage

PROVENANCE = Provenance(
    source_sha256="a" * 64, width_px=640, height_px=96, bundle_digest="b" * 64, model="tiny 1"
)


@pytest.fixture(scope="module")
def scan():
    rec = record(top=1000.0, bottom=1031.95, unit="ft")  # 640 columns of 0.05 ft
    image = draw_scan(96, 640, gaps=[slice(0, 20), slice(300, 350)])
    curves = oracle_curves(image, rec)
    return rec, curves, render_outputs(curves, rec, PROVENANCE)


@pytest.mark.parametrize("good", ["42-001-00001", "S000001", "well_7.v2", "A"])
def test_key_parts_that_are_accepted(good):
    assert check_key_part(good, field="uwi") == good


@pytest.mark.parametrize(
    "bad", ["", "a/b", "../x", "a..b", ".hidden", "a=b", "a b", "-x", "w\\1", "x" * 129]
)
def test_key_parts_that_would_change_or_escape_the_layout_are_refused(bad):
    with pytest.raises(InputError, match="scan_id"):
        check_key_part(bad, field="scan_id")


def test_layout_objects_and_their_content(scan, bucket):
    rec, curves, outputs = scan
    committed = commit_scan(bucket, rec, outputs)
    prefix = f"{bucket}/well={rec.uwi}/scan={rec.scan_id}"
    assert committed.prefix == prefix == scan_prefix(bucket, rec)
    assert committed.written
    assert sorted(storage.list_files(prefix)) == sorted([*FILE_NAMES, SUCCESS_NAME])
    assert [k.rsplit("/", 1)[1] for k in committed.keys] == [*FILE_NAMES, SUCCESS_NAME]
    assert verify_committed(prefix) == []

    las = lasio.read(storage.read_text(f"{prefix}/curves.las"))
    doc = json.loads(storage.read_bytes(f"{prefix}/curves.json"))
    assert doc["layout_version"] == LAYOUT_VERSION
    assert doc["channel_order"] == ["DEPT", "GR", "RES"]
    assert doc["depth"]["unit"] == "ft"
    assert (doc["depth"]["start"], doc["depth"]["stop"]) == (1000.0, 1031.95)
    assert doc["depth"]["step"] == las.well["STEP"].value == curves.step
    np.testing.assert_allclose(doc["depth"]["values"], las.index, atol=1e-9)
    for entry in doc["curves"]:
        from_json = np.array([np.nan if v is None else v for v in entry["values"]])
        assert np.array_equal(np.isnan(from_json), np.isnan(las[entry["name"]]))
        assert np.array_equal(from_json, curves.values[entry["name"]], equal_nan=True)
        assert entry["unit"] == las.curves[entry["name"]].unit

    qc = json.loads(storage.read_bytes(f"{prefix}/qc.json"))
    assert qc["source"]["sha256"] == PROVENANCE.source_sha256
    assert qc["bundle"]["digest"] == PROVENANCE.bundle_digest
    reg = qc["registration"]["pixel_to_depth"]
    assert (reg["first_column_depth"], reg["last_column_depth"]) == (1000.0, 1031.95)
    assert reg["depth_per_column"] == pytest.approx(0.05)
    for name in ("GR", "RES"):
        runs = gap_runs(curves.values[name])
        assert runs  # the drawn gaps are there
        assert [(g["first"], g["last"]) for g in qc["curves"][name]["gaps"]] == runs
        assert qc["curves"][name]["gap_samples"] == int(np.isnan(curves.values[name]).sum())

    marker = json.loads(storage.read_bytes(f"{prefix}/{SUCCESS_NAME}"))
    for name in FILE_NAMES:
        data = storage.read_bytes(f"{prefix}/{name}")
        assert marker["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_repeated_commit_is_a_no_op_and_other_content_is_refused(scan, tmp_path):
    rec, curves, outputs = scan
    first = commit_scan(str(tmp_path), rec, outputs)
    times = {n: (tmp_path / first.prefix / n).stat().st_mtime_ns for n in FILE_NAMES}
    again = commit_scan(str(tmp_path), rec, render_outputs(curves, rec, PROVENANCE))
    assert not again.written
    assert {n: (tmp_path / first.prefix / n).stat().st_mtime_ns for n in FILE_NAMES} == times

    other = render_outputs(curves, rec, Provenance(**{**PROVENANCE.__dict__, "model": "tiny 2"}))
    with pytest.raises(ConflictingScanError, match="already committed with other content"):
        commit_scan(str(tmp_path), rec, other)
    assert storage.read_bytes(f"{first.prefix}/qc.json") == outputs.files["qc.json"]


def test_success_is_written_last_and_a_retry_rewrites_identical_bytes(scan, tmp_path):
    rec, _, outputs = scan
    out = str(tmp_path / "out")
    prefix = scan_prefix(out, rec)
    (tmp_path / "out" / f"well={rec.uwi}" / f"scan={rec.scan_id}" / "qc.json").mkdir(parents=True)
    with pytest.raises(OSError):  # qc.json cannot be written: the commit stops before _SUCCESS
        commit_scan(out, rec, outputs)
    assert not is_committed(prefix)
    assert storage.read_bytes(f"{prefix}/curves.las") == outputs.files["curves.las"]
    assert verify_committed(prefix) == [f"{prefix}/{SUCCESS_NAME}: missing"]

    (tmp_path / "out" / f"well={rec.uwi}" / f"scan={rec.scan_id}" / "qc.json").rmdir()
    assert commit_scan(out, rec, outputs).written  # the retry
    assert verify_committed(prefix) == []
    for name in FILE_NAMES:
        assert storage.read_bytes(f"{prefix}/{name}") == outputs.files[name]


def test_verify_finds_an_altered_object(scan, tmp_path):
    rec, _, outputs = scan
    committed = commit_scan(str(tmp_path), rec, outputs)
    storage.write_bytes(f"{committed.prefix}/curves.las", b"~V\n")
    (problem,) = verify_committed(committed.prefix)
    assert "curves.las: sha256" in problem


def test_rendering_does_not_depend_on_the_clock_or_the_run(scan):
    rec, curves, outputs = scan
    again = render_outputs(curves, rec, PROVENANCE)
    assert dict(again.files) == dict(outputs.files)
    assert again.success == outputs.success
    las = outputs.files["curves.las"].decode()
    assert "DATE." in las and "2026" not in las


def test_gap_runs():
    v = np.array([np.nan, 1, np.nan, np.nan, 2, 3, np.nan])
    assert gap_runs(v) == [(0, 0), (2, 3), (6, 6)]
    assert gap_runs(np.ones(4)) == []
