#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): bare-model passes/s of a ResNet34 U-Net at 512 px in
# fp32 / bf16 / bf16+channels_last+compile, then the real job on a synthetic basemap for about
# two minutes with GPU utilisation sampled every 200 ms; prints one table. Under 8 minutes on
# an H100/H200.
#
# On a machine whose python3 has CUDA torch but not tilecast's other dependencies (rasterio,
# pyproj, shapely, pydantic ...), put their wheels in .whl/ first (bench/gpu_wheels.sh does it
# on a machine that reaches PyPI); they are installed into /tmp/site here, without the network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
exec timeout 470 "$PY" bench/gpu_check.py "$@"
