"""Model bundles: contract, manifest, statistics, model program, golden samples.

``load_bundle`` verifies everything and fails closed; ``create_bundle`` and
``create_from_training_dir`` write bundles that pass it.
"""

from tilecast.bundle.contract import Contract, Step
from tilecast.bundle.create import ContractDraft, create_bundle, create_from_training_dir
from tilecast.bundle.load import Bundle, load_bundle

__all__ = [
    "Bundle",
    "Contract",
    "ContractDraft",
    "Step",
    "create_bundle",
    "create_from_training_dir",
    "load_bundle",
]
