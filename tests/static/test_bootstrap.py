"""scripts/bootstrap.py's preflight on this machine: a problem is said in plain words with what
fixes it, and exits 1, never with a traceback (the bare machine's case: tests/containers)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_port_taken_by_another_program_is_named_with_the_setting_that_moves_it(tmp_path: Path) -> None:
    # A copy of the script, so that its run directory is not this checkout's (whose stack may be up);
    # servers "elsewhere", so that it touches no server's roles.
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "bootstrap.py"
    script.write_text((ROOT / "scripts" / "bootstrap.py").read_text())
    elsewhere = {"POSTGRES_ADMIN_URL": "postgresql+psycopg://x:y@127.0.0.1:5432/postgres",
                 "PATIENT_AMQP_URL": "amqp://x:y@127.0.0.1:5672/%2F"}  # fmt: skip
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**os.environ, **elsewhere, "NGINX_PORT": str(port)}
        result = subprocess.run([sys.executable, str(script), "--for", "up"], env=env, cwd="/", capture_output=True,
                                text=True, check=False)  # fmt: skip
    assert result.returncode == 1
    assert f"Another program listens on {port} (NGINX_PORT)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_the_admin_url_is_the_one_given_else_the_role_bootstrap_made() -> None:
    script = [sys.executable, str(ROOT / "scripts" / "bootstrap.py"), "--admin-url"]
    given = "postgresql+psycopg://someone:secret@db.example:5432/postgres"
    env = {**os.environ, "POSTGRES_ADMIN_URL": given}
    assert subprocess.run(script, env=env, capture_output=True, text=True, check=True).stdout.strip() == given
    env.pop("POSTGRES_ADMIN_URL")
    made = subprocess.run(script, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert made.startswith(("postgresql+psycopg://painkiller_admin:", "postgresql+psycopg://postgres@"))
