"""Fault tests share the faulty stack (faulty.py) and print their tallies at the end of the run."""

from dataclasses import asdict

import pytest
from faulty import faulty  # noqa: F401 (a fixture, found by pytest under this name)
from tally import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault tests: events (Jepsen-style tally)")
    columns = list(asdict(FIGURES[0][1]))
    terminalreporter.write_line(f"{'scenario':<56}" + "".join(f"{c:>{len(c) + 2}}" for c in columns))
    for name, figures in FIGURES:
        cells = zip(columns, asdict(figures).values(), strict=True)
        terminalreporter.write_line(f"{name:<56}" + "".join(f"{v:>{len(c) + 2}}" for c, v in cells))
