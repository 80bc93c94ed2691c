"""The thaw-slump job's entry point, as the launching workflow calls it:

    python scripts/inference.py --config configs/inference.yaml --tile-list tiles.csv [--shard N]

The same command as ``tilecast rts run``.
"""

from tilecast.cli.options import setup_logging
from tilecast.cli.rts import run

if __name__ == "__main__":
    setup_logging(1)
    run(prog_name="inference.py")
