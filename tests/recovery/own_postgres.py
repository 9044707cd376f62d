"""A PostgreSQL cluster of the test's own: initdb'd in a temporary directory, on a free port, run
by the `postgres` user. The recovery drill destroys its data directory, which must never be the
machine's cluster's."""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import free_port

OWNER = "postgres"


@dataclass(frozen=True)
class OwnPostgres:
    home: Path  # data/, the socket, the server's log, backups/
    port: int
    bin_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://{OWNER}@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        as_owner(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args)

    def start(self) -> None:
        self.pg_ctl("-l", str(self.home / "postgresql.log"), "-w", "-t", "60", "start")

    def crash(self) -> None:
        """The server gone at once, as on a power cut (no checkpoint)."""
        self.pg_ctl("-m", "immediate", "stop")


def as_owner(*args: str) -> None:
    prefix = ["runuser", "-u", OWNER, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *args], check=True, capture_output=True, cwd="/")


def bin_dir() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    home = Path(tempfile.mkdtemp(prefix="painkiller-drill-"))
    owner = pwd.getpwnam(OWNER)
    os.chown(home, owner.pw_uid, owner.pw_gid)
    cluster = OwnPostgres(home, free_port(), bin_dir())
    as_owner(str(cluster.bin_dir / "initdb"), "-D", str(cluster.data_dir), "-U", OWNER, "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8")  # fmt: skip
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {cluster.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{home}'\n")
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.crash()
        shutil.rmtree(home, ignore_errors=True)
