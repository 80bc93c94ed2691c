import pytest
from torch import nn

from tilecast.errors import ContractError, UnknownNameError
from tilecast.models import ARCHITECTURES, architecture_names, build_model, register


def test_reference_architectures_are_registered():
    assert {"unet", "veernet"} <= set(architecture_names())
    assert architecture_names() == sorted(ARCHITECTURES)


def test_unknown_name_lists_the_known_names():
    with pytest.raises(UnknownNameError) as info:
        build_model("resnet", {})
    message = str(info.value)
    assert "architecture" in message and "'resnet'" in message
    assert "unet" in message and "veernet" in message
    assert isinstance(info.value, KeyError)
    assert "unet" in info.value.known


def test_unknown_parameter_names_architecture_and_parameter():
    with pytest.raises(ContractError, match=r"'unet' has no parameter 'widht'"):
        build_model("unet", {"widht": 8})


def test_invalid_value_names_architecture_and_parameter():
    with pytest.raises(ContractError, match=r"architecture 'unet'.*depth"):
        build_model("unet", {"depth": -2})
    with pytest.raises(ContractError, match=r"architecture 'veernet'.*widths"):
        build_model("veernet", {"depth": 2, "widths": [4, 8]})


def test_params_must_be_a_mapping():
    with pytest.raises(ContractError, match="must be a mapping"):
        build_model("unet", [("depth", 2)])


def test_register_refuses_a_taken_name():
    with pytest.raises(ContractError, match="already registered"):
        register("unet")(nn.Identity)


def test_register_adds_a_new_name():
    @register("test-identity")
    def identity() -> nn.Module:
        return nn.Identity()

    try:
        assert isinstance(build_model("test-identity", {}), nn.Identity)
        assert "test-identity" in architecture_names()
    finally:
        del ARCHITECTURES["test-identity"]
