"""Rendering progress events: a bar with rate and ETA on a terminal, log lines otherwise."""

from __future__ import annotations

import sys
import time

import click

from tilecast.run.progress import ProgressEvent
from tilecast.run.stages import per_tile_ms


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def line(event: ProgressEvent, *, unit: str = "tiles") -> str:
    pct = 100 * event.done / event.total if event.total else 100.0
    text = (
        f"{event.done}/{event.total} {unit} ({pct:.1f}%), {event.skipped} skipped, "
        f"{event.rate:.2f} {unit}/s, elapsed {_duration(event.elapsed_s)}, ETA {_duration(event.eta_s)}"
    )
    stages = per_tile_ms(event.stages, event.done - event.skipped)
    return f"{text}; {stages}" if stages else text


class ProgressRenderer:
    """Callable for the library's progress callback."""

    def __init__(self, *, interval_s: float = 30.0, stream=None, unit: str = "tiles") -> None:
        self.stream = stream or sys.stderr
        self.unit = unit
        self.tty = self.stream.isatty()
        self.interval_s = interval_s
        self._last = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        if self.tty:
            width = 30
            filled = int(width * event.done / event.total) if event.total else width
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if event.done >= event.total else ""
            click.echo(f"\r[{bar}] {line(event, unit=self.unit)}", nl=False, err=True)
            if end:
                click.echo("", err=True)
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s or event.done >= event.total:
            self._last = now
            click.echo(f"progress: {line(event, unit=self.unit)}", err=True)
