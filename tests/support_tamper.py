"""Tampering helpers: edit a bundle file and (optionally) re-hash so only deeper checks catch it."""

from __future__ import annotations

import json
from pathlib import Path

from tilecast.bundle.manifest import MANIFEST_NAME, build_manifest


def rehash_manifest(bundle: Path) -> None:
    """Rewrite manifest.json so it matches the files as they are now."""
    contents = {
        str(p.relative_to(bundle)): p.read_bytes()
        for p in sorted(bundle.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }
    old = json.loads((bundle / MANIFEST_NAME).read_text())
    (bundle / MANIFEST_NAME).write_text(
        build_manifest(contents, producer=old["producer"]).to_json()
    )


def edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


def set_contract(bundle: Path, dotted: str, value: object) -> None:
    path = bundle / "contract.json"
    data = json.loads(path.read_text())
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    path.write_text(json.dumps(data, indent=2))
