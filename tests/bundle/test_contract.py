"""The contract schema refuses what would make a step run twice, out of order, or not at all."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tilecast.bundle.contract import Contract, default_steps


@pytest.fixture
def contract_data(make_bundle) -> dict:
    return json.loads((make_bundle() / "contract.json").read_text())


def test_contract_round_trips(contract_data):
    c = Contract.model_validate(contract_data)
    assert Contract.model_validate(json.loads(c.model_dump_json())) == c
    assert c.digest() == Contract.model_validate(contract_data).digest()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("input", "colour"), "RGB", "Extra inputs are not permitted"),
        (("postprocessing", "threshold"), 1.5, "less than or equal to 1"),
        (("input", "channel_order"), "RGBN", "names 4 channels but channels is 3"),
        (("alignment", "multiple"), 0, "greater than or equal to 1"),
    ],
)
def test_bad_fields_are_refused_with_their_path(contract_data, path, value, message):
    node = contract_data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValidationError, match=message) as err:
        Contract.model_validate(contract_data)
    assert ".".join(path[-2:]) in str(err.value).replace("\n", ".").replace(" ", "") or path[
        -1
    ] in str(err.value)


def steps(*ops, where=None):
    where = where or {}
    return [{"op": op, "where": where.get(op, "host"), "params": {}} for op in ops]


@pytest.mark.parametrize(
    ("preprocessing", "message"),
    [
        (
            steps(
                "guard_sentinels",
                "reorder_channels",
                "fill_invalid",
                "normalize",
                "normalize",
                "pad_to_multiple",
            ),
            "once",
        ),
        (steps("guard_sentinels", "fill_invalid", "reorder_channels", "pad_to_multiple"), "order"),
        (
            steps("guard_sentinels", "reorder_channels", "fill_invalid", "normalize"),
            "pad_to_multiple",
        ),
        (
            steps("reorder_channels", "fill_invalid", "normalize", "pad_to_multiple"),
            "guard_sentinels",
        ),
        (
            steps(
                "guard_sentinels", "reorder_channels", "fill_invalid", "resize", "pad_to_multiple"
            ),
            "unknown",
        ),
        (
            steps(
                "guard_sentinels",
                "reorder_channels",
                "fill_invalid",
                "pad_to_multiple",
                where={"pad_to_multiple": "model"},
            ),
            "cannot run inside the model",
        ),
        (
            steps(
                "guard_sentinels",
                "reorder_channels",
                "fill_invalid",
                "scale_values",
                "normalize",
                "pad_to_multiple",
                where={"scale_values": "model"},
            ),
            "model-side ops must be last",
        ),
    ],
)
def test_step_lists_that_would_misbehave_are_refused(contract_data, preprocessing, message):
    contract_data["preprocessing"] = preprocessing
    with pytest.raises(ValidationError, match=message):
        Contract.model_validate(contract_data)


def test_constant_padding_with_baked_normalisation_is_refused(contract_data):
    contract_data["alignment"]["pad_mode"] = "constant"
    with pytest.raises(ValidationError, match="pad before normalising"):
        Contract.model_validate(contract_data)
    contract_data["preprocessing"] = [s.model_dump() for s in default_steps(baked=())]
    assert Contract.model_validate(contract_data).alignment.pad_mode == "constant"
