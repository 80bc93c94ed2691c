"""Classifying images on object stores (moto S3, the GCS emulator): folders and globs."""

from __future__ import annotations

from pathlib import Path

import pytest
from classify_support import write_png

from tilecast.apps.classify import classify, expand_inputs
from tilecast.bundle import load_bundle
from tilecast.io import storage

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_classify_a_bucket_folder_and_glob(make_classifier, bucket: str, tmp_path: Path) -> None:
    for name, rgb in (("red.png", (230, 20, 20)), ("blue.png", (20, 20, 230))):
        storage.write_bytes(
            f"{bucket}/chips/{name}",
            write_png(tmp_path / name, rgb, height=40, width=48).read_bytes(),
        )
    storage.write_bytes(f"{bucket}/chips/notes.txt", b"not an image")
    folder = expand_inputs([f"{bucket}/chips"])
    assert folder == [f"{bucket}/chips/blue.png", f"{bucket}/chips/red.png"]
    assert expand_inputs([f"{bucket}/chips/r*.png"]) == [f"{bucket}/chips/red.png"]
    run = classify(load_bundle(make_classifier()), [*folder, f"{bucket}/chips/missing.png"])
    assert [r.answer.label for r in run.rows[:2]] == ["blue", "red"]
    assert run.rows[2].status == "rejected" and run.summary.rejected == 1
