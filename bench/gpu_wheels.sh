#!/usr/bin/env bash
# Download, into .whl/, the wheels bench/gpu_check.sh needs on a GPU machine whose Python
# (3.12, x86-64) has torch, numpy, pyyaml, fsspec, click and attrs but none of tilecast's
# geospatial and config dependencies, and which cannot reach a package index.
#   bench/gpu_wheels.sh [PYTHON_VERSION]      (default 3.12); then carry .whl to the machine
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-3.12}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
for pkg in rasterio affine cligj click-plugins pydantic pydantic-core annotated-types \
           typing-inspection pyproj shapely; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$pkg"
done
du -sh .whl
