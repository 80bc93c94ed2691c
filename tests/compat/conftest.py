"""tests/compat: the results table goes to the end of the terminal report, even with ``-q``."""

from __future__ import annotations

import pytest

_TABLES = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def report_table(pytestconfig: pytest.Config):
    """Call with a text to print it in the terminal summary."""
    tables = pytestconfig.stash.setdefault(_TABLES, [])
    return tables.append


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    for text in config.stash.get(_TABLES, []):
        terminalreporter.write_sep("-", "tilecast vs segmentation_models_pytorch")
        terminalreporter.write_line(text)
