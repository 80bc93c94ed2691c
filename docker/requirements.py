"""Print tilecast's requirements, one a line: pyproject.toml's dependencies and the named extras.

    python3 docker/requirements.py pyproject.toml report,serve > /tmp/requirements.txt

The Dockerfile installs these from pyproject.toml alone, before it copies the source, so that a
change to the code rebuilds only the small layer that installs tilecast itself.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    lines = list(project["dependencies"])
    for name in extras:
        if name not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise SystemExit(f"extra {name!r} is not in {pyproject} (its extras: {known})")
        lines += optional[name]
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: requirements.py PYPROJECT EXTRA[,EXTRA...]")
    extras = [e.strip() for e in sys.argv[2].split(",") if e.strip()]
    print("\n".join(requirements(Path(sys.argv[1]), extras)))
