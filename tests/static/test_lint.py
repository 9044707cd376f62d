"""The code passes the linter and is formatted: style is checked by CI, not by reviewers."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUFF = str(Path(sys.executable).parent / "ruff")


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([RUFF, "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_code_is_formatted() -> None:
    result = subprocess.run([RUFF, "format", "--check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
