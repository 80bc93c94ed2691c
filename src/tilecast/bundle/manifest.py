"""``manifest.json``: the sha256 and size of every bundle file, and the bundle digest.

Verification fails closed: a listed file that is missing or differs, or a file that is not
listed, refuses the bundle with the file named and the expected and found values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tilecast.errors import BundleError, BundleIntegrityError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = MANIFEST_SCHEMA_VERSION
    files: dict[str, FileEntry]
    bundle_digest: str
    producer: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_digest(files: Mapping[str, FileEntry]) -> str:
    """One hash over every file's path and hash: it names the bundle's exact content."""
    lines = "".join(f"{files[name].sha256}  {name}\n" for name in sorted(files))
    return sha256_hex(lines.encode())


def build_manifest(contents: Mapping[str, bytes], *, producer: Mapping[str, str]) -> Manifest:
    files = {
        name: FileEntry(sha256=sha256_hex(data), size=len(data))
        for name, data in sorted(contents.items())
        if name != MANIFEST_NAME
    }
    return Manifest(files=files, bundle_digest=bundle_digest(files), producer=dict(producer))


def parse_manifest(data: bytes, *, where: str) -> Manifest:
    try:
        manifest = Manifest.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise BundleError(f"{where}/{MANIFEST_NAME}: not a valid manifest: {exc}") from exc
    if manifest.schema_version != MANIFEST_SCHEMA_VERSION:
        raise BundleError(
            f"{where}/{MANIFEST_NAME}: schema_version {manifest.schema_version} is not supported "
            f"(this tilecast reads {MANIFEST_SCHEMA_VERSION})"
        )
    expected = bundle_digest(manifest.files)
    if manifest.bundle_digest != expected:
        raise BundleIntegrityError(
            f"{where}/{MANIFEST_NAME}: bundle_digest is {manifest.bundle_digest}, "
            f"its file list hashes to {expected}"
        )
    return manifest


def verify_listing(manifest: Manifest, present: list[str], *, where: str) -> None:
    """Every listed file is present, and nothing else is."""
    listed = set(manifest.files)
    actual = set(present) - {MANIFEST_NAME}
    missing = sorted(listed - actual)
    if missing:
        raise BundleIntegrityError(
            f"{where}: files listed in {MANIFEST_NAME} are missing: {missing}"
        )
    extra = sorted(actual - listed)
    if extra:
        raise BundleIntegrityError(f"{where}: files not listed in {MANIFEST_NAME}: {extra}")


def verify_file(manifest: Manifest, name: str, data: bytes, *, where: str) -> None:
    entry = manifest.files.get(name)
    if entry is None:
        raise BundleIntegrityError(f"{where}/{name}: not listed in {MANIFEST_NAME}")
    if len(data) != entry.size:
        raise BundleIntegrityError(
            f"{where}/{name}: size is {len(data)} bytes, {MANIFEST_NAME} expects {entry.size}"
        )
    found = sha256_hex(data)
    if found != entry.sha256:
        raise BundleIntegrityError(
            f"{where}/{name}: sha256 is {found}, {MANIFEST_NAME} expects {entry.sha256}"
        )
