"""Loading a bundle: every check passes or the bundle is refused, naming file, expected, found."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from pydantic import ValidationError

from tilecast.bundle import onnx_format  # noqa: F401  (registers model format "onnx")
from tilecast.bundle.contract import Contract
from tilecast.bundle.formats import LoadContext, load_model
from tilecast.bundle.frozen import InferenceModel
from tilecast.bundle.golden import GOLDEN_DIR, GoldenPair, check_pair
from tilecast.bundle.manifest import (
    MANIFEST_NAME,
    Manifest,
    parse_manifest,
    verify_file,
    verify_listing,
)
from tilecast.bundle.stats import NormalizationStats, md5_hex, parse_stats
from tilecast.errors import BundleError
from tilecast.io import storage

log = logging.getLogger(__name__)

CONTRACT_NAME = "contract.json"
TRAINING_LAYOUT = ("best_model.pth", "normalization_stats.json", "config.yaml")


@dataclass(frozen=True)
class Bundle:
    """A verified model bundle, ready to serve."""

    uri: str
    manifest: Manifest
    contract: Contract
    stats: NormalizationStats
    stats_md5: str
    model: InferenceModel
    golden_max_error: float | None  # None when golden checks were skipped

    @property
    def digest(self) -> str:
        return self.manifest.bundle_digest

    @property
    def alignment(self) -> int:
        return self.contract.alignment.multiple

    @property
    def threshold(self) -> float:
        return self.contract.postprocessing.threshold

    @property
    def model_file(self) -> str:
        return storage.join(self.uri, self.contract.model.file)


class _VerifiedFiles:
    """Reads bundle files once each, checking every read against the manifest."""

    def __init__(self, uri: str, manifest: Manifest):
        self.uri, self.manifest = uri, manifest

    def read(self, name: str) -> bytes:
        data = storage.read_bytes(storage.join(self.uri, name))
        verify_file(self.manifest, name, data, where=self.uri)
        return data


def read_manifest(uri: str) -> tuple[Manifest, list[str]]:
    try:
        present = storage.list_files(uri)
    except Exception as exc:
        raise BundleError(f"{uri}: cannot list bundle directory ({exc})") from exc
    if MANIFEST_NAME not in present:
        if all(name in present for name in TRAINING_LAYOUT):
            raise BundleError(
                f"{uri}: no {MANIFEST_NAME}; this is a training layout ({', '.join(TRAINING_LAYOUT)}). "
                f"Make a verified bundle first: tilecast bundle create {uri} --out <bundle dir>"
            )
        raise BundleError(f"{uri}: no {MANIFEST_NAME}; expected a tilecast bundle directory")
    manifest = parse_manifest(storage.read_bytes(storage.join(uri, MANIFEST_NAME)), where=uri)
    verify_listing(manifest, present, where=uri)
    return manifest, present


def parse_contract(data: bytes, *, where: str) -> Contract:
    try:
        return Contract.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise BundleError(f"{where}/{CONTRACT_NAME}: invalid contract: {exc}") from exc


def load_bundle(uri: str | os.PathLike[str], *, check_golden: bool = True) -> Bundle:
    """Load and verify a bundle: manifest hashes, statistics, model, eval mode, golden samples."""
    uri = os.fspath(uri).rstrip("/")
    manifest, _ = read_manifest(uri)
    files = _VerifiedFiles(uri, manifest)
    contract = parse_contract(files.read(CONTRACT_NAME), where=uri)
    stats_bytes = files.read(contract.stats.file)
    stats = parse_stats(
        stats_bytes,
        file=f"{uri}/{contract.stats.file}",
        expected_md5=contract.stats.md5,
        expected_dataset_version=contract.stats.dataset_version,
        channels=contract.input.channels,
    )
    ctx = LoadContext(contract=contract, stats=stats, where=f"{uri}/{contract.model.file}")
    model = load_model(files.read(contract.model.file), ctx)
    worst = None
    if check_golden:
        if not contract.golden.files:
            raise BundleError(
                f"{uri}: {CONTRACT_NAME} lists no golden samples; refusing to serve unchecked"
            )
        worst = 0.0
        for name in contract.golden.files:
            pair = GoldenPair.from_bytes(
                name, files.read(f"{GOLDEN_DIR}/{name}"), default_order=contract.input.channel_order
            )
            worst = max(
                worst, check_pair(pair, contract=contract, stats=stats, model=model, where=uri)
            )
    log.info(
        "loaded bundle %s (%s %s, digest %s, golden max error %s)",
        uri,
        contract.name,
        contract.version,
        manifest.bundle_digest[:12],
        "skipped" if worst is None else f"{worst:.2g}",
    )
    return Bundle(
        uri=uri,
        manifest=manifest,
        contract=contract,
        stats=stats,
        stats_md5=md5_hex(stats_bytes),
        model=model,
        golden_max_error=worst,
    )
