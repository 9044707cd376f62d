"""Continuous backups of the stack's PostgreSQL with pgBackRest, and restores from them.

    python scripts/backups.py configure        WAL archiving on, the repository made, a first backup
    python scripts/backups.py backup           a base backup now
    python scripts/backups.py restore --target 2026-12-03T10:15:00Z|latest [--service patient|measurement]
    python scripts/backups.py info             the backups and the WAL archive, as pgBackRest sees them

Both services' databases live in one PostgreSQL cluster on the native stack, and pgBackRest backs
up clusters. Restoring the cluster restores both; restoring one service's database goes through a
scratch instance (restored with only that database, on a free port, then dumped and loaded into the
live cluster), so the other service keeps its data. The service's processes, under `make up`'s
supervisor, are stopped around a restore and started again after. doc/operations.md is the runbook.

Why pgBackRest: it is Debian's packaged, widely used tool for exactly this (WAL archive with
checksums, base backups full and incremental, retention, point-in-time restore, restore of selected
databases); `pg_basebackup` plus a hand-written `archive_command` would leave retention, archive
checks and the restore's recovery settings to code of ours.
"""

import argparse
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bootstrap  # noqa: E402
from stack import free_port  # noqa: E402
from supervision import Supervisor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STANZA = "painkiller"
DATABASES = {"patient": "patients", "measurement": "measurements"}  # service -> database (`make up`'s)
# A WAL segment is archived when full or after this long: the most a lost disk can cost in
# acknowledged writes at low traffic (doc/operations.md, recovery point).
ARCHIVE_TIMEOUT_S = 60
RETENTION_FULL = 2  # full backups kept; older ones, and the WAL only they need, are expired


def backup_dir() -> Path:
    return Path(os.environ.get("BACKUP_DIR", "/var/backups/painkiller"))


@dataclass(frozen=True)
class Cluster:
    """The PostgreSQL cluster behind an admin URL, as it describes itself."""

    admin_url: str
    data_dir: Path
    config_file: Path
    port: int
    socket_dir: str
    version: int  # major

    @classmethod
    def of(cls, admin_url: str, saved: Path) -> "Cluster":
        """As the running server describes itself; when it does not run (its disk lost), as it
        did when backups were configured (`saved`)."""
        admin_url = libpq(admin_url)
        try:
            cluster = cls._asked(admin_url)
        except psycopg.OperationalError:
            if not saved.exists():
                raise
            fields = json.loads(saved.read_text())
            return cls(admin_url, Path(fields["data_dir"]), Path(fields["config_file"]), fields["port"],
                       fields["socket_dir"], fields["version"])  # fmt: skip
        if not cluster.data_dir.exists():
            return cluster  # on another machine: nothing of it is restored from here
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(cluster).items()}))
        return cluster

    @classmethod
    def _asked(cls, admin_url: str) -> "Cluster":
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            settings: dict[str, str] = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                    (["data_directory", "config_file", "port", "unix_socket_directories", "server_version_num"],),
                ).fetchall()
            )
        return cls(
            admin_url=admin_url,
            data_dir=Path(settings["data_directory"]),
            config_file=Path(settings["config_file"]),
            port=int(settings["port"]),
            socket_dir=settings["unix_socket_directories"].split(",")[0].strip(),
            version=int(settings["server_version_num"]) // 10000,
        )

    @property
    def owner(self) -> str:
        return pwd.getpwuid(self.data_dir.stat().st_uid).pw_name if self.data_dir.exists() else "postgres"

    @property
    def bin_dir(self) -> Path:
        debian = Path(f"/usr/lib/postgresql/{self.version}/bin")
        return debian if debian.exists() else Path(shutil.which("pg_ctl") or "pg_ctl").parent

    @property
    def debian_managed(self) -> bool:
        """Debian's layout keeps the configuration in /etc/postgresql/<version>/<name>, where
        pg_ctlcluster, not pg_ctl, starts and stops the cluster."""
        return self.config_file.parent != self.data_dir

    def as_owner(self, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command as the data directory's owner (PostgreSQL's tools refuse root)."""
        prefix = ["runuser", "-u", self.owner, "--"] if os.geteuid() == 0 and self.owner != "root" else []
        return subprocess.run([*prefix, *args], check=check, text=True, cwd="/", capture_output=capture)

    def pg_ctl(self, data_dir: Path, *args: str, check: bool = True) -> None:
        self.as_owner(str(self.bin_dir / "pg_ctl"), "-s", "-D", str(data_dir), *args, check=check, capture=not check)

    def stop(self) -> None:
        if self.debian_managed:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *self._debian_name, "stop"], check=False)
        elif (self.data_dir / "postmaster.pid").exists():
            self.pg_ctl(self.data_dir, "-w", "-t", "300", "stop", "-m", "fast")

    def start(self) -> None:
        """Start it, and wait until it has replayed what a restore left it to replay and accepts writes."""
        if self.debian_managed:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *self._debian_name, "start"], check=True)
        else:
            log = self.data_dir.parent / "postgresql.log"
            self.pg_ctl(self.data_dir, "-l", str(log), "-w", "-t", "3600", "start")
        wait_writable(self.admin_url, self.data_dir)

    def answers(self) -> bool:
        try:
            psycopg.connect(self.admin_url, connect_timeout=3).close()
        except psycopg.OperationalError:
            return False
        return True

    @property
    def _debian_name(self) -> list[str]:
        return [self.config_file.parent.parent.name, self.config_file.parent.name]


def libpq(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://`) as libpq takes it."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def wait_writable(admin_url: str, data_dir: Path, timeout_s: float = 3600) -> None:
    """Until the server answers and is out of recovery (a restore's replay can take a while); an
    error if it stopped instead (such as for a target the archive does not reach: its log says)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not (data_dir / "postmaster.pid").exists():
            raise RuntimeError(f"PostgreSQL in {data_dir} stopped during recovery; its log says why")
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                    return
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not accept writes within {timeout_s:.0f}s of its start")
        time.sleep(0.2)


class Repository:
    """pgBackRest's repository in BACKUP_DIR, for one cluster: its configuration file is what the
    cluster's `archive_command` and every command here use."""

    def __init__(self, cluster: Cluster, directory: Path) -> None:
        self.cluster = cluster
        self.dir = directory
        self.config = directory / "pgbackrest.conf"

    def write_config(self) -> None:
        for sub in ("", "repo", "log", "lock", "spool"):
            (self.dir / sub).mkdir(mode=0o750, parents=True, exist_ok=True)
            shutil.chown(self.dir / sub, self.cluster.owner, self.cluster.owner)
        self.config.write_text(
            "[global]\n"
            f"repo1-path={self.dir / 'repo'}\n"
            f"repo1-retention-full={RETENTION_FULL}\n"
            f"log-path={self.dir / 'log'}\nlock-path={self.dir / 'lock'}\nspool-path={self.dir / 'spool'}\n"
            "compress-type=lz4\nstart-fast=y\nlog-level-console=warn\nlog-level-file=info\n"
            f"\n[{STANZA}]\n"
            f"pg1-path={self.cluster.data_dir}\npg1-port={self.cluster.port}\npg1-socket-path={self.cluster.socket_dir}\n"
        )
        self.config.chmod(0o640)
        shutil.chown(self.config, self.cluster.owner, self.cluster.owner)

    def run(self, command: str, *options: str, capture: bool = False) -> str:
        done = self.cluster.as_owner(
            "pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *options, command, capture=capture
        )
        return done.stdout if capture else ""

    def info(self) -> dict[str, object]:
        stanzas = json.loads(self.run("info", "--output=json", capture=True))
        return stanzas[0] if stanzas else {}

    def backups(self) -> list[dict[str, object]]:
        return list(self.info().get("backup", []))  # type: ignore[call-overload]


def configure(repo: Repository) -> None:
    """WAL archiving into the repository, checked, and a first full backup if there is none.
    PostgreSQL is restarted once, the first time (archive_mode needs it)."""
    if not repo.cluster.data_dir.exists():
        print("PostgreSQL runs on another machine: its backups are that machine's (doc/operations.md)")
        return
    archive_command = f"pgbackrest --config={repo.config} --stanza={STANZA} archive-push %p"
    with psycopg.connect(repo.cluster.admin_url, autocommit=True) as conn:
        was_on = conn.execute("SHOW archive_mode").fetchone()[0] == "on"  # type: ignore[index]
        current = conn.execute("SHOW archive_command").fetchone()[0]  # type: ignore[index]
        if was_on and current not in ("", "(disabled)", archive_command):
            print(f"PostgreSQL already archives its WAL ({current!r}): its backups are left as they are")
            return
        repo.write_config()
        conn.execute("ALTER SYSTEM SET archive_mode = 'on'")
        quoted = archive_command.replace("'", "''")  # ALTER SYSTEM takes no parameters
        conn.execute(f"ALTER SYSTEM SET archive_command = '{quoted}'")
        conn.execute(f"ALTER SYSTEM SET archive_timeout = '{ARCHIVE_TIMEOUT_S}s'")
        conn.execute("SELECT pg_reload_conf()")
    if not was_on:
        print("turning WAL archiving on: restarting PostgreSQL once", flush=True)
        repo.cluster.stop()
        repo.cluster.start()
    repo.run("stanza-create")
    repo.run("check")  # a WAL segment goes to the repository and back: archiving works
    if not repo.backups():
        backup(repo, kind="full")


def backup(repo: Repository, kind: str = "incr") -> None:
    """A base backup now: incremental on the last one (a full one if there is none)."""
    repo.run("backup", f"--type={kind}")


def restore(repo: Repository, target: str, *, service: str | None, supervisor: Supervisor | None) -> None:
    """The cluster, or one service's database, as it was at `target` (RFC 3339) or as late as the
    archive goes (`latest`); the processes that use it are stopped meanwhile."""
    options = target_options(target)  # a bad target fails before anything is stopped
    paused = pause(supervisor, service)
    try:
        if repo.cluster.answers():
            # With nothing more acknowledged, the WAL being written goes to the archive now, not
            # within archive_timeout: a restore to the last minute, or to the latest, finds it there.
            repo.run("check")
        if service is None:
            restore_cluster(repo, options)
        else:
            restore_database(repo, options, DATABASES[service])
    finally:
        resume(supervisor, paused)
    if service is None:
        # The next restore starts from here, not from before this one (the processes run meanwhile).
        backup(repo, kind="full")


def moment(value: str) -> datetime:
    """An RFC 3339 time from the command line; one without an offset is refused, not guessed."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no offset: write it as RFC 3339, e.g. 2026-12-03T10:15:00Z")
    return parsed


def target(value: str) -> str:
    return value if value == "latest" else moment(value).isoformat()


def target_options(target: str) -> list[str]:
    if target == "latest":
        return ["--type=default"]  # every archived WAL segment replayed
    at = moment(target)
    return ["--type=time", f"--target={at.isoformat(sep=' ')}", "--target-action=promote"]


def restore_cluster(repo: Repository, target_options: list[str]) -> None:
    cluster = repo.cluster
    cluster.stop()
    # --delta keeps the files that match the backup, and makes the data directory again if it is gone.
    cluster.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.chown(cluster.data_dir, cluster.owner, cluster.owner)
    repo.run("restore", "--delta", "--target-timeline=current", *target_options)
    cluster.start()
    repo.run("check")  # archiving goes on, on the new timeline


def restore_database(repo: Repository, target_options: list[str], database: str) -> None:
    """Restore `database` alone: a scratch instance gets the backup with only that database's
    files, replays to the target, and is dumped; the dump replaces the live database, in one
    transaction."""
    cluster = repo.cluster
    scratch = Path(tempfile.mkdtemp(prefix="painkiller-restore-", dir=repo.dir / "spool"))
    shutil.chown(scratch, cluster.owner, cluster.owner)
    data = scratch / "data"
    port = free_port()
    repo.run(
        "restore", f"--pg1-path={data}", f"--db-include={database}", "--archive-mode=off",
        "--target-timeline=current", *target_options,
    )  # fmt: skip
    write_scratch_config(data, port, scratch, cluster)
    scratch_url = f"postgresql://{cluster.owner}@/{database}?host={scratch}&port={port}"
    dump = scratch / "database.dump"
    try:
        cluster.pg_ctl(data, "-l", str(scratch / "log"), "-w", "-t", "3600", "start")
        wait_writable(scratch_url, data)
        cluster.as_owner(str(cluster.bin_dir / "pg_dump"), "-Fc", "-f", str(dump), "-d", scratch_url)
        live = make_conninfo(repo.cluster.admin_url, dbname=database)
        restore_dump = [str(cluster.bin_dir / "pg_restore"), "--clean", "--if-exists", "--single-transaction"]
        subprocess.run([*restore_dump, "--exit-on-error", "-d", live, str(dump)], check=True, cwd="/")
    finally:
        cluster.pg_ctl(data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def write_scratch_config(data: Path, port: int, scratch: Path, cluster: Cluster) -> None:
    """Settings of the scratch instance: its own port and socket, no TCP, no archiving. On Debian's
    layout the backup holds no configuration files, so minimal ones are written."""
    owner_only = f"local all {cluster.owner} trust\n"
    if not (data / "pg_hba.conf").exists():
        (data / "pg_hba.conf").write_text(owner_only)
        (data / "pg_ident.conf").write_text("")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = ''\nunix_socket_directories = '{scratch}'\n"
            "archive_mode = off\nshared_buffers = 128MB\n"
        )
    (data / "pg_hba.conf").write_text(owner_only)  # the owner, by socket: nobody else reaches it
    for path in (data / "postgresql.conf", data / "pg_hba.conf", data / "pg_ident.conf"):
        shutil.chown(path, cluster.owner, cluster.owner)


def pause(supervisor: Supervisor | None, service: str | None) -> list[str]:
    """Stop the processes of `service` (of both if None; NGINX stays, answering 502) under the
    supervisor; the names stopped."""
    if supervisor is None or not supervisor.answering():
        return []
    prefix = f"{service}-" if service else ""
    names = [p["name"] for p in supervisor.processes() if p["name"] != "nginx" and p["name"].startswith(prefix)]
    names = [n for n in names if supervisor.info(n)["statename"] in ("RUNNING", "STARTING", "BACKOFF")]
    for name in names:
        supervisor.stop_program(name)
    return names


def resume(supervisor: Supervisor | None, names: list[str]) -> None:
    if supervisor is None:
        return
    for name in names:
        supervisor.start_program(name)
    for name in names:
        supervisor.wait_running(name, timeout_s=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["configure", "backup", "restore", "info"])
    parser.add_argument("--target", type=target, default="latest", help="RFC 3339 time, or `latest` (restore)")
    parser.add_argument("--service", choices=sorted(DATABASES), help="restore only this service's database")
    parser.add_argument("--type", choices=["full", "diff", "incr"], default="incr", help="of backup (pgBackRest's)")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run", help="the stack whose processes to pause")
    args = parser.parse_args()
    directory = backup_dir()
    cluster = Cluster.of(os.environ.get("POSTGRES_ADMIN_URL") or bootstrap.admin_url(), directory / "cluster.json")
    repo = Repository(cluster, directory)
    if args.command == "configure":
        configure(repo)
    elif args.command == "backup":
        backup(repo, kind=args.type)
    elif args.command == "info":
        repo.run("info")
    else:
        supervisor = Supervisor(args.run_dir) if (args.run_dir / "supervisor.sock").exists() else None
        restore(repo, args.target, service=args.service, supervisor=supervisor)
        print(f"restored {args.service or 'the cluster'} to {args.target}; now run `make reconcile`")


if __name__ == "__main__":
    main()
