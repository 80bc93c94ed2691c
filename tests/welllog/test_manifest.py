"""The batch manifest and the scan-prefix layout: bad scans rejected by field and line, the
others kept; a malformed file refused naming the line."""

from __future__ import annotations

import json

import pytest
from welllog_support import GR, RES, manifest_csv, record, registration_json

from tilecast.apps.welllog.manifest import (
    COLUMNS,
    ManifestError,
    parse_manifest,
    read_manifest,
    read_scan_prefix,
    read_scans,
    record_from_json,
)
from tilecast.errors import InputError
from tilecast.io import storage

HEADER = ",".join(COLUMNS)
GOOD = [
    "a.png,W-1,S1,1000,1100,ft,GR,gAPI,0,150,linear",
    "a.png,W-1,S1,1000,1100,ft,RES,ohm.m,0.2,2000,log",
    "b.png,W-2,S1,2000,1950,m,GR,gAPI,0,150,LIN",
]
SENTINELS = ["-999", "-999.25", "NA", "None", "NaN", ""]


def parse(*rows: str, base: str = "/data"):
    return parse_manifest("\n".join([HEADER, *rows]) + "\n", source="m.csv", base=base)


def test_rows_are_grouped_into_records_in_curve_order():
    scans = parse(*GOOD)
    assert scans.rejected == ()
    a, b = scans.records
    assert a.scan_uri == "/data/a.png"  # relative to the manifest's folder
    assert [c.name for c in a.curves] == ["GR", "RES"]
    assert a.curves[1] == RES and a.curves[0] == GR
    assert (b.top_depth, b.bottom_depth, b.depth_unit) == (2000.0, 1950.0, "m")
    assert b.curves[0].scale == "linear"


@pytest.mark.parametrize("sentinel", SENTINELS)
@pytest.mark.parametrize(
    "column", ["uwi", "scan_id", "top_depth", "bottom_depth", "curve", "unit", "left", "right"]
)
def test_a_sentinel_in_a_field_rejects_that_scan_naming_field_and_line(column, sentinel):
    fields = dict(zip(COLUMNS, GOOD[2].split(","), strict=True))
    fields[column] = sentinel
    scans = parse(*GOOD[:2], ",".join(fields.values()))
    assert [r.scan_uri for r in scans.records] == ["/data/a.png"]  # the others go on
    (rejected,) = scans.rejected
    assert rejected.scan == "b.png"
    assert "line 4" in rejected.reason
    assert column in rejected.reason


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("left", "abc", "left is not a number: found 'abc'"),
        ("top_depth", "1e400", "top_depth"),
        ("depth_unit", "yards", "depth_unit"),
        ("scale", "cubic", "scale"),
        ("scale", "", "scale"),
        ("right", "0", "left and right are both 0.0"),
        ("uwi", "W/2", "uwi 'W/2' cannot be used in an output key"),
        ("curve", "G R", "curve name 'G R'"),
        ("bottom_depth", "2000", "top_depth and bottom_depth are both 2000.0"),
    ],
)
def test_garbage_in_a_field_rejects_that_scan(column, value, expected):
    fields = dict(zip(COLUMNS, GOOD[2].split(","), strict=True))
    fields[column] = value
    scans = parse(*GOOD[:2], ",".join(fields.values()))
    assert len(scans.records) == 1
    (rejected,) = scans.rejected
    assert expected in rejected.reason
    assert "line 4" in rejected.reason


def test_rows_of_one_scan_must_agree():
    scans = parse(GOOD[0], GOOD[1].replace(",1100,", ",1101,"), GOOD[2])
    (rejected,) = scans.rejected
    assert rejected.scan == "a.png"
    assert "disagree on bottom_depth" in rejected.reason
    assert "(line 2)" in rejected.reason and "(line 3)" in rejected.reason
    assert [r.scan_uri for r in scans.records] == ["/data/b.png"]


def test_two_scans_with_the_same_output_key_keep_only_the_first():
    scans = parse(GOOD[0], GOOD[0].replace("a.png", "c.png"))
    assert [r.scan_uri for r in scans.records] == ["/data/a.png"]
    (rejected,) = scans.rejected
    assert "already used by a.png" in rejected.reason


def test_a_repeated_curve_rejects_the_scan():
    scans = parse(GOOD[0], GOOD[0])
    (rejected,) = scans.rejected
    assert "curve names repeat" in rejected.reason and "lines 2, 3" in rejected.reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (HEADER.replace(",scale", ""), "missing ['scale']"),
        (HEADER + ",extra", "unknown ['extra']"),
        (HEADER.replace("uwi", "well"), "missing ['uwi'], unknown ['well']"),
        ("", "the header must be exactly"),
    ],
)
def test_a_malformed_header_is_refused_naming_line_1(header, expected):
    with pytest.raises(ManifestError, match="line 1") as info:
        parse_manifest(f"{header}\n{GOOD[0]}\n", source="m.csv")
    assert expected in str(info.value)


def test_the_header_may_list_the_columns_in_any_order():
    names = list(reversed(COLUMNS))
    row = ",".join(reversed(GOOD[2].split(",")))
    scans = parse_manifest(f"{','.join(names)}\n{row}\n", source="m.csv")
    assert scans.records[0].uwi == "W-2"


def test_a_line_with_the_wrong_number_of_fields_is_refused_naming_it():
    with pytest.raises(ManifestError, match=r"m\.csv line 3: 12 fields, the header has 11"):
        parse(GOOD[0], GOOD[1] + ",x", GOOD[2])


def test_an_empty_file_is_refused():
    with pytest.raises(ManifestError, match="empty file"):
        parse_manifest("", source="m.csv")


def test_blank_lines_are_ignored_and_line_numbers_stay_physical():
    text = "\n".join([HEADER, GOOD[0], "", GOOD[2].replace(",0,150,", ",NA,150,")]) + "\n"
    scans = parse_manifest(text, source="m.csv")
    (rejected,) = scans.rejected
    assert "line 4" in rejected.reason


def test_manifest_on_an_object_store_resolves_relative_uris(bucket):
    uri = f"{bucket}/batch/manifest.csv"
    recs = [record(scan_uri="scans/one.png"), record(scan_uri="s3://other/two.png", scan_id="S2")]
    storage.write_text(uri, manifest_csv(recs))
    scans = read_manifest(uri)
    assert [r.scan_uri for r in scans.records] == [
        f"{bucket}/batch/scans/one.png",
        "s3://other/two.png",
    ]


def test_scan_prefix_pairs_images_with_registration_records(s3_bucket):
    prefix = f"{s3_bucket}/prefix-pairs"
    good = record(scan_id="S1")
    storage.write_bytes(f"{prefix}/one.png", b"png")
    storage.write_text(f"{prefix}/one.json", json.dumps(registration_json(good)))
    storage.write_bytes(f"{prefix}/sub/two.tif", b"tif")
    bad = registration_json(record(scan_id="S2"))
    bad["top_depth"] = -999.25
    storage.write_text(f"{prefix}/sub/two.json", json.dumps(bad))
    storage.write_bytes(f"{prefix}/lonely.png", b"png")
    storage.write_text(f"{prefix}/orphan.json", json.dumps(registration_json(record())))
    storage.write_text(f"{prefix}/notes.txt", "ignored")

    scans = read_scans(prefix)
    (only,) = scans.records
    assert only.scan_uri == f"{prefix}/one.png" and only.scan_id == "S1"
    reasons = {r.scan.rsplit("/", 1)[1]: r.reason for r in scans.rejected}
    assert set(reasons) == {"two.tif", "lonely.png", "orphan.json"}
    assert "top_depth is missing" in reasons["two.tif"]
    assert "no registration record lonely.json" in reasons["lonely.png"]
    assert "no image beside it" in reasons["orphan.json"]


def test_a_manifest_inside_the_prefix_is_used(tmp_path):
    (tmp_path / "manifest.csv").write_text(manifest_csv([record(scan_uri="x.png")]))
    (tmp_path / "y.png").write_bytes(b"png")  # not listed: the manifest decides
    scans = read_scan_prefix(str(tmp_path))
    assert [r.scan_uri for r in scans.records] == [str(tmp_path / "x.png")]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"uwi": None}, "uwi"),
        ({"bottom_depth": "NA"}, "bottom_depth is missing"),
        ({"curves": []}, "curves"),
        ({"curves": [{"name": "GR", "unit": "gAPI", "left": 0, "right": -999}]}, "right"),
        ({"scan_uri": "elsewhere.png"}, "scan_uri"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_registration_json_names_the_bad_field(change, expected):
    fields = {**registration_json(record()), **change}
    with pytest.raises(InputError, match=expected):
        record_from_json(json.dumps(fields), scan_uri="scan.png")


def test_registration_json_that_is_not_an_object_is_refused():
    with pytest.raises(InputError, match="not valid JSON"):
        record_from_json(b"{", scan_uri="x")
    with pytest.raises(InputError, match="expected a JSON object"):
        record_from_json(b"[1]", scan_uri="x")
