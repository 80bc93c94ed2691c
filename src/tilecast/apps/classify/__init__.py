"""Image classification with a bundle whose contract's task is ``classification``.

``inputs`` expands files, folders, globs and list files; ``job`` reads, prepares (the
contract's executor), batches and predicts; ``decide`` is the pure top-k / threshold /
``uncertain`` arithmetic; ``results`` holds the rows, the summary and the output files.
"""

from tilecast.apps.classify.decide import Answer, Ranked, decide, rank
from tilecast.apps.classify.inputs import expand_inputs
from tilecast.apps.classify.job import ClassifyRun, classify
from tilecast.apps.classify.results import Row, Summary, write_rows

__all__ = [
    "Answer",
    "ClassifyRun",
    "Ranked",
    "Row",
    "Summary",
    "classify",
    "decide",
    "expand_inputs",
    "rank",
    "write_rows",
]
