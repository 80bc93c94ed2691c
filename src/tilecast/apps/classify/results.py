"""The rows a ``classify`` run produces, its summary, and the CSV / JSON Lines files.

One row per input, in input order: a classified image carries its answer, a rejected one the
reason, so a results file always accounts for every input.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tilecast.apps.classify.decide import Answer
from tilecast.drift import DriftVerdict
from tilecast.errors import InputError
from tilecast.io import storage

CSV_COLUMNS = (
    "input",
    "status",
    "label",
    "confidence",
    "uncertain",
    "top_k",
    "positives",
    "width",
    "height",
    "checks",
    "reason",
)


@dataclass(frozen=True)
class Row:
    input: str
    status: Literal["classified", "rejected"]
    answer: Answer | None = None
    size_wh: tuple[int, int] | None = None  # the input's (width, height) as read
    checks: tuple[str, ...] = ()
    reason: str = ""

    def record(self) -> dict[str, Any]:
        """The row as JSON-ready data (the JSON Lines form)."""
        a = self.answer
        return {
            "input": self.input,
            "status": self.status,
            "label": None if a is None else a.label,
            "confidence": None if a is None else round(a.confidence, 6),
            "uncertain": None if a is None else a.uncertain,
            "top_k": []
            if a is None
            else [{"label": r.name, "probability": round(r.probability, 6)} for r in a.top_k],
            "positives": [] if a is None else list(a.positives),
            "width": None if self.size_wh is None else self.size_wh[0],
            "height": None if self.size_wh is None else self.size_wh[1],
            "checks": list(self.checks),
            "reason": self.reason,
        }

    def csv_record(self) -> dict[str, Any]:
        rec = self.record()
        rec["top_k"] = ";".join(f"{t['label']}:{t['probability']:.4f}" for t in rec["top_k"])
        rec["positives"] = ";".join(rec["positives"])
        rec["checks"] = ";".join(rec["checks"])
        return {k: "" if v is None else v for k, v in rec.items()}


@dataclass(frozen=True)
class Summary:
    total: int
    classified: int
    uncertain: int
    rejected: int
    labels: Mapping[str, int]  # certain answers per label
    rejections: Mapping[str, str]  # input -> reason
    elapsed_s: float
    tta: str
    batch_size: int
    bundle: str = ""
    input_drift: DriftVerdict | None = None  # every classified image's valid pixels, pooled

    @property
    def rate(self) -> float:
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0


def summarise(
    rows: Sequence[Row],
    *,
    elapsed_s: float,
    tta: str,
    batch_size: int,
    bundle: str,
    input_drift: DriftVerdict | None = None,
) -> Summary:
    answers = [r.answer for r in rows if r.answer is not None]
    return Summary(
        total=len(rows),
        classified=len(answers),
        uncertain=sum(a.uncertain for a in answers),
        rejected=len(rows) - len(answers),
        labels=dict(Counter(a.label for a in answers if not a.uncertain).most_common()),
        rejections={r.input: r.reason for r in rows if r.status == "rejected"},
        elapsed_s=elapsed_s,
        tta=tta,
        batch_size=batch_size,
        bundle=bundle,
        input_drift=input_drift,
    )


def encode_rows(rows: Sequence[Row], *, fmt: Literal["csv", "jsonl"]) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r.record(), sort_keys=False) + "\n" for r in rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(r.csv_record() for r in rows)
    return buf.getvalue()


def results_format(uri: str | os.PathLike[str]) -> Literal["csv", "jsonl"]:
    text = os.fspath(uri).lower()
    if text.endswith(".csv"):
        return "csv"
    if text.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise InputError(f"results file must end in .csv or .jsonl, {os.fspath(uri)!r} is given")


def write_rows(uri: str | os.PathLike[str], rows: Sequence[Row]) -> None:
    """Write the rows as CSV or JSON Lines (by the name's suffix), atomically."""
    storage.write_text(uri, encode_rows(rows, fmt=results_format(uri)))
