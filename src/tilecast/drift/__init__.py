"""Input drift: running statistics of the valid raw input, judged against training's.

- :mod:`.moments`: per-channel statistics that sample, merge and round-trip JSON;
- :mod:`.reference`: what the bundle was trained on, in input units;
- :mod:`.judge`: the rules (another scaling, swapped bands, means far off, low contrast,
  values outside training's range), with reasons in words;
- :mod:`.monitor`: the running monitor a job or a service feeds, ``warn`` or ``fail``.
"""

from tilecast.drift.judge import DriftFlag, DriftPolicy, DriftVerdict, judge
from tilecast.drift.moments import ChannelMoments, PendingMoments, sample_moments
from tilecast.drift.monitor import DRIFT_MODES, DriftMode, DriftMonitor, from_records
from tilecast.drift.reference import TrainingReference

__all__ = [
    "DRIFT_MODES",
    "ChannelMoments",
    "DriftFlag",
    "DriftMode",
    "DriftMonitor",
    "DriftPolicy",
    "DriftVerdict",
    "PendingMoments",
    "TrainingReference",
    "from_records",
    "judge",
    "sample_moments",
]
