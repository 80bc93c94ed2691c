"""Load-time verification fails closed: every byte, every listed file, the stats, the digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support_tamper import edit_json, rehash_manifest, set_contract
from tilecast.bundle import load_bundle
from tilecast.errors import BundleError, BundleIntegrityError, GoldenMismatchError


def bundle_files(bundle: Path) -> list[str]:
    return sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())


@pytest.mark.parametrize("model_format", ["export", "state_dict"])
def test_bundle_loads_and_reproduces_golden(make_bundle, model_format):
    b = load_bundle(make_bundle(model_format))
    assert b.golden_max_error is not None and b.golden_max_error <= b.contract.golden.atol
    assert b.alignment == 32  # derived from the U-Net's five stride-2 stages
    assert len(b.stats_md5) == 32
    assert set(b.manifest.files) == set(bundle_files(Path(b.uri))) - {"manifest.json"}


@pytest.mark.parametrize("model_format", ["export", "state_dict"])
def test_any_changed_byte_in_any_file_is_refused(bundle_copy, model_format):
    bundle = bundle_copy(model_format)
    names = bundle_files(bundle)
    assert {"manifest.json", "contract.json", "normalization_stats.json"} <= set(names)
    for name in names:
        path = bundle / name
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(BundleError) as err:
            load_bundle(bundle)
        assert name in str(err.value) or name == "manifest.json", str(err.value)
        path.write_bytes(original)
    load_bundle(bundle)  # restored: loads again


def test_unlisted_and_missing_files_are_refused(bundle_copy):
    bundle = bundle_copy()
    (bundle / "notes.txt").write_text("hello")
    with pytest.raises(BundleIntegrityError, match=r"not listed.*notes\.txt"):
        load_bundle(bundle)
    (bundle / "notes.txt").unlink()
    golden = next((bundle / "golden").glob("*.npz"))
    golden.unlink()
    with pytest.raises(BundleIntegrityError, match=r"missing.*golden/"):
        load_bundle(bundle)


def test_wrong_statistics_file_is_refused_by_md5(bundle_copy):
    bundle = bundle_copy()
    edit_json(bundle / "normalization_stats.json", mean=[120.0, 110.0, 100.0])
    rehash_manifest(bundle)  # the manifest alone is fooled; the contract's md5 is not
    with pytest.raises(BundleIntegrityError) as err:
        load_bundle(bundle)
    message = str(err.value)
    assert "normalization_stats.json" in message and "md5" in message
    recorded = json.loads((bundle / "contract.json").read_text())["stats"]["md5"]
    assert recorded in message


def test_dataset_version_mismatch_is_refused(bundle_copy):
    bundle = bundle_copy("state_dict")
    edit_json(bundle / "normalization_stats.json", dataset_version="test-v2")
    from tilecast.bundle.stats import md5_hex

    set_contract(bundle, "stats.md5", md5_hex((bundle / "normalization_stats.json").read_bytes()))
    rehash_manifest(bundle)
    with pytest.raises(
        BundleIntegrityError, match=r"dataset_version is 'test-v2'.*expects 'test-v1'"
    ):
        load_bundle(bundle)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"std": [31.0, 0.0, 33.0]}, "std must be finite and > 0"),
        ({"mean": [1.0, float("nan"), 2.0]}, "mean must be finite"),
        ({"mean": [1.0, 2.0], "std": [1.0, 2.0]}, "statistics for 2 channels, the model takes 3"),
    ],
)
def test_bad_statistics_are_refused(bundle_copy, change, message):
    bundle = bundle_copy("state_dict")
    path = bundle / "normalization_stats.json"
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    from tilecast.bundle.stats import md5_hex

    set_contract(bundle, "stats.md5", md5_hex(path.read_bytes()))
    rehash_manifest(bundle)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle)


def test_edited_mean_fails_the_golden_check(bundle_copy):
    """Even with every hash updated to match, a changed mean changes outputs and is refused."""
    bundle = bundle_copy("state_dict", baked=())
    path = bundle / "normalization_stats.json"
    edit_json(path, mean=[101.5, 112.25, 97.0])  # one channel off by 2 grey levels
    from tilecast.bundle.stats import md5_hex

    set_contract(bundle, "stats.md5", md5_hex(path.read_bytes()))
    rehash_manifest(bundle)
    with pytest.raises(GoldenMismatchError, match="differ from the golden output"):
        load_bundle(bundle)


def test_program_exported_for_another_contract_is_refused(bundle_copy):
    bundle = bundle_copy("export")
    set_contract(bundle, "postprocessing.threshold", 0.7)
    rehash_manifest(bundle)
    with pytest.raises(BundleIntegrityError, match="exported for another contract"):
        load_bundle(bundle)


def test_training_layout_without_manifest_points_to_bundle_create(tmp_path):
    for name in ("best_model.pth", "normalization_stats.json", "config.yaml"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(BundleError, match="tilecast bundle create"):
        load_bundle(tmp_path)
