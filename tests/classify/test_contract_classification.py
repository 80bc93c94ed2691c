"""Classification in the contract: what is refused at create and at load, and the digest of
contracts that do not use the new fields."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from classify_support import FIXED_32, ChannelMeans, classifier_draft, stats_bytes

from support_tamper import rehash_manifest, set_contract
from tilecast.bundle import create_bundle, load_bundle
from tilecast.bundle.contract import Contract, Postprocessing
from tilecast.errors import BundleError, ContractError

REPO = Path(__file__).resolve().parents[2]
# digests stamped into the shipped programs before classification existed
SHIPPED = {
    "rts-demo": "7c750ceee82de207747c4be9514f3e4a61a3ec1b083166dc71e9087b8e84aa05",
    "welllog-demo": "d838c3535b656fb6a86eb09a55a4daa7efb0715a3921957ae396751ede9124d3",
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_contracts_keep_their_bytes_and_digest(name: str) -> None:
    path = REPO / "models" / name / "contract.json"
    contract = Contract.model_validate_json(path.read_bytes())
    assert contract.digest() == SHIPPED[name]
    assert (contract.model_dump_json(indent=2) + "\n").encode() == path.read_bytes()


def test_unset_classification_fields_are_not_serialised() -> None:
    post = Postprocessing(activation="sigmoid", labels=("bg", "fg"), threshold=0.5)
    assert set(post.model_dump()) == {"activation", "labels", "threshold", "positive_index"}
    with_k = post.model_copy(update={"top_k": 2})
    assert with_k.model_dump()["top_k"] == 2


def _create(tmp_path: Path, net: torch.nn.Module | None = None, **changes: object) -> None:
    create_bundle(
        net or ChannelMeans(),
        classifier_draft(**changes),
        stats_bytes=stats_bytes(),
        out=tmp_path / "out",
    )


def test_lost_label_map_is_refused_at_create(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="needs its label map"):
        _create(tmp_path, labels=())
    assert not (tmp_path / "out").exists()


def test_label_count_mismatch_is_refused_at_create(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="names 3 labels but the model has 4 outputs"):
        _create(tmp_path, ChannelMeans(outputs=4))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resize": None}, "needs a resize_image step"),
        ({"activation": "none"}, "softmax .one label. or sigmoid"),
        ({"calibrated_on": None}, "no calibrated_on"),
        ({"top_k": 5}, "top_k is 5 but there are 3 labels"),
        ({"labels": ("red", "red", "blue")}, "names a label twice"),
        ({"resize": {**FIXED_32, "interpolation": "lanczos"}}, "resize_image params must be"),
    ],
)
def test_classification_contracts_say_everything(
    tmp_path: Path, changes: dict, message: str
) -> None:
    with pytest.raises(ContractError, match=message):
        _create(tmp_path, **changes)


def test_a_segmentation_contract_refuses_a_resize_step(make_classifier) -> None:
    data = json.loads((make_classifier() / "contract.json").read_text())
    data["task"] = "segmentation"
    with pytest.raises(ValueError, match="resize_image step is for classification"):
        Contract.model_validate(data)


def test_lost_label_map_is_refused_at_load(classifier_copy) -> None:
    bundle = classifier_copy()
    set_contract(bundle, "postprocessing.labels", [])
    rehash_manifest(bundle)
    with pytest.raises(BundleError, match="needs its label map"):
        load_bundle(bundle)


def test_a_model_with_more_outputs_than_labels_is_refused_at_load(classifier_copy) -> None:
    """A program that records no contract digest (legacy TorchScript) and gives 4 outputs
    where the label map names 3: the loader's golden run names the mismatch."""
    bundle = classifier_copy(baked=())
    program = torch.jit.script(ChannelMeans(outputs=4).eval())
    buf = io.BytesIO()
    torch.jit.save(program, buf, _extra_files={"tilecast.json": json.dumps({"baked_steps": []})})
    (bundle / "model.pt2").unlink()
    (bundle / "model.pt").write_bytes(buf.getvalue())
    set_contract(bundle, "model.format", "torchscript")
    set_contract(bundle, "model.file", "model.pt")
    rehash_manifest(bundle)
    with pytest.raises(
        BundleError, match=r"names 3 labels, the model gives outputs of shape \(1, 4\)"
    ):
        load_bundle(bundle)


def test_golden_pairs_of_a_classifier_are_class_vectors(make_classifier) -> None:
    bundle = load_bundle(make_classifier())
    assert bundle.golden_max_error is not None and bundle.golden_max_error < 1e-6
    assert bundle.contract.resize is not None and bundle.contract.resize.output_hw == (32, 32)
