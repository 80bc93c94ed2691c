"""Options and helpers shared by subcommands."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tilecast.errors import TilecastError

F = TypeVar("F", bound=Callable[..., Any])

#: Exit statuses of the job commands: 0 done (``_SUCCESS`` written where the command writes
#: one), 1 an error stopped the command, 2 a usage error (click's), 3 finished but incomplete:
#: some tiles are not done for a reason a rerun can fix (unreadable basemap pixels, a storage
#: error); rerunning the same command retries them. No ``_SUCCESS`` then.
EXIT_ERROR = 1
EXIT_INCOMPLETE = 3

channel_order_option = click.option(
    "--channel-order",
    default=None,
    help="Every band of the input in order (RGB, BGR, L, RGBA: A names the alpha band, which "
    "says which pixels are valid and is not a channel). Default: the file's colour "
    "interpretation, else RGB for 3 bands and L for 1.",
)

input_drift_option = click.option(
    "--input-drift",
    type=click.Choice(["warn", "fail"]),
    default="warn",
    show_default=True,
    help="Inputs unlike the training data (another scaling, swapped bands, means far off, low "
    "contrast): warn and go on, or fail (exit status 1) before any output is written.",
)


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * verbosity
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s"
    )
    # the AWS clients say "Found credentials in environment variables" at INFO for every
    # session GDAL and rasterio make (hundreds per run): only with -vv
    quiet = logging.WARNING if verbosity < 2 else logging.DEBUG
    for name in ("botocore.credentials", "aiobotocore.credentials"):
        logging.getLogger(name).setLevel(quiet)


def reports_errors(fn: F) -> F:
    """Turn tilecast errors into a one-line message and exit status 1, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TilecastError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]
