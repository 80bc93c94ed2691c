"""Which images a ``classify`` run reads: files, folders, globs and list files, expanded.

Every listing goes through :mod:`tilecast.io.storage`, so local paths, ``s3://`` and ``gs://``
are the same here. The order is the order given; a folder or glob contributes its matches
sorted; an image named twice is read once.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilecast.errors import InputError, StorageError
from tilecast.io import storage

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
LIST_SUFFIXES = (".txt", ".lst", ".list")
GLOB_CHARS = frozenset("*?[")


def is_image(uri: str) -> bool:
    return uri.lower().endswith(IMAGE_SUFFIXES)


def _is_list_file(uri: str) -> bool:
    return uri.lower().endswith(LIST_SUFFIXES)


def _list_file(uri: str) -> list[str]:
    """One URI per line; blank lines and ``#`` comments are skipped; relative local paths are
    taken relative to the list file's folder."""
    base = uri.rsplit("/", 1)[0] if "/" in uri else "."
    entries = []
    for line in storage.read_text(uri).splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        relative = storage.is_local(entry) and not entry.startswith(("/", "file://"))
        entries.append(storage.join(base, entry) if relative else entry)
    return entries


def _folder(uri: str) -> list[str]:
    return [storage.join(uri, name) for name in storage.list_files(uri) if is_image(name)]


def expand_inputs(items: Sequence[str]) -> list[str]:
    """The image URIs that ``items`` name. A name that is neither an image, a folder, a glob
    nor a list file is kept: reading it then fails as a named rejection, not a silent skip."""
    found: list[str] = []
    for item in items:
        if GLOB_CHARS & set(item.split("://", 1)[-1]):
            matches = [m for m in storage.glob(item) if is_image(m)]
            if not matches:
                raise InputError(
                    f"{item}: the pattern matches no image ({', '.join(IMAGE_SUFFIXES)})"
                )
            found.extend(matches)
        elif _is_list_file(item):
            found.extend(_list_file(item))
        elif not is_image(item) and _is_folder(item):
            found.extend(_folder(item))
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def _is_folder(uri: str) -> bool:
    if storage.is_local(uri):
        return storage.local_path(uri).is_dir()
    try:
        return bool(storage.list_files(uri))
    except StorageError:  # no objects below this prefix: a file name
        return False
