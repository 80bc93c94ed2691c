"""The scans of a batch run: a CSV manifest, or a prefix of scans with registration records.

CSV manifest (one row per curve, the rows of one scan in the model's class order)::

    scan_uri,uwi,scan_id,top_depth,bottom_depth,depth_unit,curve,unit,left,right,scale

Rows are grouped by ``scan_uri``; the rows of one scan must agree on ``uwi``, ``scan_id``,
``top_depth``, ``bottom_depth`` and ``depth_unit``. A relative ``scan_uri`` is relative to the
manifest's folder. A sentinel (-999, -999.25, NA, None, NaN, empty) or garbage in a field
rejects that scan, naming the field and the CSV line; the other scans go on. A header that is
not exactly these columns, or a line with the wrong number of fields, is an error naming the
line: the file is not a manifest.

A scan prefix (``--scans s3://bucket/scans``) holds either ``manifest.csv`` (read as above) or
images (``.png``, ``.tif``, ``.tiff``, ``.jpg``, ``.jpeg``) each beside a registration record
``<name>.json``: the JSON the HTTP service takes (``uwi``, ``scan_id``, ``top_depth``,
``bottom_depth``, ``depth_unit``, ``curves``: [{``name``, ``unit``, ``left``, ``right``,
``scale``}]), ``scan_uri`` left out (it is the image beside it).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tilecast.apps.welllog.records import CurveSpec, ScanRecord
from tilecast.apps.welllog.writeback import check_writable
from tilecast.errors import InputError
from tilecast.io import storage

COLUMNS = (
    "scan_uri",
    "uwi",
    "scan_id",
    "top_depth",
    "bottom_depth",
    "depth_unit",
    "curve",
    "unit",
    "left",
    "right",
    "scale",
)
SCAN_COLUMNS = ("uwi", "scan_id", "top_depth", "bottom_depth", "depth_unit")
CURVE_COLUMNS = {
    "curve": "name",
    "unit": "unit",
    "left": "left",
    "right": "right",
    "scale": "scale",
}
MANIFEST_NAME = "manifest.csv"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
_SCALES = {"linear": "linear", "lin": "linear", "log": "log", "logarithmic": "log"}


class ManifestError(InputError):
    """The manifest itself is malformed (header, a line's shape): no scan can be trusted."""


@dataclass(frozen=True)
class RejectedScan:
    """A scan left out before any pixel is read, and why."""

    scan: str  # its scan_uri (or what identifies it)
    reason: str  # names the field (and the CSV line)


@dataclass(frozen=True)
class ScanList:
    """The accepted registration records of a batch, and the scans rejected while reading it."""

    source: str
    records: tuple[ScanRecord, ...]
    rejected: tuple[RejectedScan, ...] = ()


def field_errors(exc: ValidationError, *, names: Mapping[str, str] | None = None) -> str:
    """pydantic's errors as 'field: message' (field renamed by ``names``), joined by '; '."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and names:
            loc[0] = names.get(loc[0], loc[0])
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = ".".join(loc)
        if err["type"] == "missing":
            parts.append(f"{where} is missing")
            continue
        if len(loc) > 1 or (where and not msg.startswith(where)):
            msg = f"{where}: {msg}"
        if err["type"] == "literal_error" and "input" in err:
            msg = f"{msg}, found {err['input']!r}"
        parts.append(msg)
    return "; ".join(parts)


def _scale(text: str) -> str:
    return _SCALES.get(text.strip().lower(), text)


def _resolve(scan_uri: str, base: str) -> str:
    text = scan_uri.strip()
    if not text or "://" in text or text.startswith("/"):
        return text
    if "://" in base:
        return storage.join(base, text)
    return posixpath.normpath(posixpath.join(base, text)) if base else text


def _lines(lines: Sequence[int]) -> str:
    return f"line {lines[0]}" if len(lines) == 1 else f"lines {', '.join(map(str, lines))}"


def _read_rows(text: str, *, source: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ManifestError(
            f"{source}: empty file, expected the header {','.join(COLUMNS)}"
        ) from None
    except csv.Error as exc:
        raise ManifestError(f"{source} line 1: not CSV ({exc})") from exc
    names = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if missing or unknown or repeated:
        problems = [
            f"missing {missing}" if missing else "",
            f"unknown {unknown}" if unknown else "",
            f"repeated {repeated}" if repeated else "",
        ]
        raise ManifestError(
            f"{source} line 1: the header must be exactly {','.join(COLUMNS)}; "
            + ", ".join(p for p in problems if p)
        )
    rows = []
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if len(fields) != len(names):
                raise ManifestError(
                    f"{source} line {line}: {len(fields)} fields, the header has {len(names)}"
                )
            rows.append((line, dict(zip(names, fields, strict=True))))
    except csv.Error as exc:
        raise ManifestError(f"{source} line {reader.line_num}: not CSV ({exc})") from exc
    return rows


def _record_from_rows(
    scan_uri: str, rows: list[tuple[int, dict[str, str]]], *, base: str, source: str
) -> ScanRecord:
    """The record of one scan's rows; InputError naming the field and line(s) otherwise."""
    first = rows[0][1]
    for column in SCAN_COLUMNS:
        values = {row[column].strip() for _, row in rows}
        if len(values) > 1:
            found = ", ".join(f"{row[column]!r} (line {line})" for line, row in rows)
            raise InputError(f"{source}: the rows of one scan disagree on {column}: {found}")
    curves = []
    for line, row in rows:
        fields: dict[str, Any] = {CURVE_COLUMNS[c]: row[c] for c in CURVE_COLUMNS}
        fields["scale"] = _scale(fields["scale"])
        try:
            curves.append(CurveSpec.model_validate(fields))
        except ValidationError as exc:
            detail = field_errors(exc, names={v: k for k, v in CURVE_COLUMNS.items()})
            raise InputError(f"{source} line {line}: {detail}") from None
    lines = [line for line, _ in rows]
    try:
        record = ScanRecord.model_validate(
            {
                "scan_uri": _resolve(scan_uri, base) if scan_uri.strip() else scan_uri,
                **{c: first[c] for c in SCAN_COLUMNS},
                "curves": tuple(curves),
            }
        )
    except ValidationError as exc:
        raise InputError(f"{source} {_lines(lines)}: {field_errors(exc)}") from None
    try:
        check_writable(record)
    except InputError as exc:
        raise InputError(f"{source} {_lines(lines)}: {exc}") from None
    return record


def parse_manifest(text: str, *, source: str, base: str = "") -> ScanList:
    """Registration records from manifest text; bad scans rejected, a bad file refused.

    ``base`` is the folder relative ``scan_uri`` values are resolved against.
    """
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, row in _read_rows(text, source=source):
        groups.setdefault(row["scan_uri"].strip(), []).append((line, row))
    records: list[ScanRecord] = []
    rejected: list[RejectedScan] = []
    taken: dict[tuple[str, str], str] = {}
    for scan_uri, rows in groups.items():
        try:
            record = _record_from_rows(scan_uri, rows, base=base, source=source)
        except InputError as exc:
            rejected.append(RejectedScan(scan=scan_uri or "(no scan_uri)", reason=str(exc)))
            continue
        key = (record.uwi, record.scan_id)
        if key in taken:
            lines = _lines([line for line, _ in rows])
            rejected.append(
                RejectedScan(
                    scan=scan_uri,
                    reason=f"{source} {lines}: uwi {record.uwi} scan_id {record.scan_id} is "
                    f"already used by {taken[key]} (both would write the same output)",
                )
            )
            continue
        taken[key] = scan_uri
        records.append(record)
    return ScanList(source=source, records=tuple(records), rejected=tuple(rejected))


def read_manifest(uri: str) -> ScanList:
    """A CSV manifest at ``uri`` (local, s3://, gs://)."""
    base = uri.rsplit("/", 1)[0] if "/" in uri else ""
    return parse_manifest(storage.read_text(uri), source=uri, base=base)


def record_from_json(data: bytes | str | Mapping[str, Any], *, scan_uri: str) -> ScanRecord:
    """A registration record (JSON, ``scan_uri`` optional) for the scan at ``scan_uri``.

    InputError naming the field when it is not valid JSON, a field is missing or holds a
    sentinel, or it names another ``scan_uri``.
    """
    if isinstance(data, Mapping):
        fields = dict(data)
    else:
        try:
            fields = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"registration: not valid JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise InputError(f"registration: expected a JSON object, found {type(fields).__name__}")
    given = fields.get("scan_uri")
    if given is not None and str(given).strip() != scan_uri:
        raise InputError(f"scan_uri: the registration names {given!r}, the scan is {scan_uri!r}")
    curves = fields.get("curves")
    if isinstance(curves, list):
        fields["curves"] = [
            {**c, "scale": _scale(str(c["scale"]))}
            if isinstance(c, dict) and isinstance(c.get("scale"), str)
            else c
            for c in curves
        ]
    try:
        record = ScanRecord.model_validate({**fields, "scan_uri": scan_uri})
    except ValidationError as exc:
        raise InputError(field_errors(exc)) from None
    check_writable(record)
    return record


def read_scan_prefix(prefix: str) -> ScanList:
    """The scans under a prefix: its manifest.csv, or images paired with ``<name>.json``."""
    prefix = prefix.rstrip("/")
    names = storage.list_files(prefix)
    if MANIFEST_NAME in names:
        return read_manifest(storage.join(prefix, MANIFEST_NAME))
    stems: dict[str, dict[str, str]] = {}
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        if not dot or posixpath.basename(name).startswith("."):
            continue
        kind = "json" if suffix.lower() == "json" else "image"
        if kind == "image" and f".{suffix.lower()}" not in IMAGE_SUFFIXES:
            continue
        if kind == "image" and "image" in stems.get(stem, {}):
            kind = f"image ({name})"  # two images share a stem: reported below
        stems.setdefault(stem, {})[kind] = name
    records: list[ScanRecord] = []
    rejected: list[RejectedScan] = []
    taken: dict[tuple[str, str], str] = {}
    for stem, found in sorted(stems.items()):
        image, registration = found.get("image"), found.get("json")
        extra = [v for k, v in found.items() if k.startswith("image (")]
        where = storage.join(prefix, image or registration or stem)
        if extra:
            rejected.append(RejectedScan(where, f"several images for {stem}: {image}, {extra}"))
            continue
        if image is None:
            rejected.append(RejectedScan(where, f"{registration}: no image beside it"))
            continue
        if registration is None:
            rejected.append(RejectedScan(where, f"no registration record {stem}.json"))
            continue
        try:
            record = record_from_json(
                storage.read_bytes(storage.join(prefix, registration)), scan_uri=where
            )
        except InputError as exc:
            rejected.append(RejectedScan(where, f"{registration}: {exc}"))
            continue
        key = (record.uwi, record.scan_id)
        if key in taken:
            rejected.append(
                RejectedScan(
                    where,
                    f"{registration}: uwi {record.uwi} scan_id {record.scan_id} is already used "
                    f"by {taken[key]}",
                )
            )
            continue
        taken[key] = where
        records.append(record)
    return ScanList(source=prefix, records=tuple(records), rejected=tuple(rejected))


def read_scans(scans: str) -> ScanList:
    """``--scans``: a CSV manifest (``*.csv``) or a prefix of scans."""
    if scans.lower().endswith(".csv"):
        return read_manifest(scans)
    return read_scan_prefix(scans)
