"""The shared package and both services type-check (mypy.ini): a wrong call is found before it runs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_finds_nothing() -> None:
    result = subprocess.run(
        # Incremental, with its cache under the venv: a minute on a clean clone, seconds after.
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(ROOT / ".venv" / "mypy-cache"),
            "--config-file",
            str(ROOT / "mypy.ini"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
