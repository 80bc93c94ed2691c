"""bench/gpu_check.py's every step on the CPU at toy size (``--cpu-smoke``): the GPU check is
run where a GPU is lent for a few minutes, so it must be known to run before then. Its figures
mean nothing and are not asserted; that it gets through and prints its table is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_check_runs_through_on_the_cpu(tmp_path):
    work = tmp_path / "gpu-check"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--cpu-smoke", "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("| measure | value |") :]
    assert "| bare ResNet34 U-Net 512 px, fp32, batch 1 |" in table
    job = re.search(r"\| job: .* batch 4, 2 workers \| ([\d.]+) tiles/s .*\((\d+) tiles", table)
    assert job and float(job.group(1)) > 0 and int(job.group(2)) >= 1, table
    assert "| GPU utilisation during the job (every 200 ms) | no samples (no GPU) |" in table
    assert re.search(r"\| job / bare \(passes/s, fp32 batch 1\) \| [\d.]+ \|", table), table
    assert re.search(r"\| job CPU ms per tile by stage \| read [\d.]+, prepare", table), table
    tiles = list((work / "out" / "tiles").glob("*.tif"))
    assert len(tiles) == int(job.group(2))
