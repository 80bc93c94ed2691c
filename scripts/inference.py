"""The thaw-slump job's entry point, as the launching workflow calls it:

    python scripts/inference.py --config configs/inference.yaml --tile-list tiles.csv [--shard N]

The same command as ``tilecast rts run``. The config, the tile list and every path in the
config (bundle, basemap, output) may be local paths or ``gs://`` / ``s3://`` URLs; credentials
and custom endpoints come the usual way (``GOOGLE_APPLICATION_CREDENTIALS``,
``STORAGE_EMULATOR_HOST``; the AWS environment or profile, ``AWS_ENDPOINT_URL``). The job
checks at start that it can read its inputs and write its output.
"""

from tilecast.cli.options import setup_logging
from tilecast.cli.rts import run

if __name__ == "__main__":
    setup_logging(1)
    run(prog_name="inference.py")
