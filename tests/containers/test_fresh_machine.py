"""What a newcomer does on a bare machine: a clean Debian bookworm (debootstrap's minbase, the
images' base) in a podman container with a network of its own, the README's prerequisites
installed, then `make up` as a user who is not root, as root, and again.

PyPI and Debian's mirror are reached from the container as from this machine; this machine's CA
bundle is mounted at a path of its own (PIP_CERT, SSL_CERT_FILE), the container's own untouched.
"""

import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import images
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CA_INSIDE = "/etc/painkiller-test-ca.crt"
CHECKOUT = "/root/painkiller"
README_PREREQUISITES = "apt-get install -y -qq python3 python3-venv make git curl"


@dataclass
class Machine:
    name: str

    def run(self, script: str, *, user: str = "root", workdir: str = CHECKOUT, timeout: float = 900) -> "Ran":
        args = [*images.engine(), "exec", "--user", user, "--workdir", workdir, self.name, "bash", "-c", script]
        started = time.monotonic()
        done = subprocess.run(args, capture_output=True, text=True, env=images.engine_env(), timeout=timeout)
        return Ran(done.returncode, done.stdout, done.stdout + done.stderr, time.monotonic() - started)


@dataclass
class Ran:
    code: int
    stdout: str
    output: str  # stdout and stderr
    seconds: float


def copy_of_the_repository() -> Path:
    """The files of this checkout (committed or not, ignored ones left out), as `git clone` gives."""
    target = Path(tempfile.mkdtemp(prefix="painkiller-fresh-src-"))
    listed = target / ".files"
    listed.write_bytes(subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                                      capture_output=True).stdout)  # fmt: skip
    packed = subprocess.run(["tar", "-c", "--null", "-T", str(listed)], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=packed.stdout, check=True)
    listed.unlink()
    return target


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    tool = images.engine()
    images.debian_base(tool)
    source = copy_of_the_repository()
    name = f"painkiller-fresh-{uuid.uuid4().hex[:8]}"
    subprocess.run([*tool, "run", "--detach", "--name", name, "--volume", f"{source}:/src:ro",
                    "--volume", f"{HOST_CA}:{CA_INSIDE}:ro", "--env", f"PIP_CERT={CA_INSIDE}",
                    "--env", f"SSL_CERT_FILE={CA_INSIDE}", images.DEBIAN, "sleep", "infinity"],
                   check=True, capture_output=True, env=images.engine_env())  # fmt: skip
    try:
        fresh = Machine(name)
        ready = fresh.run(f"apt-get update -qq && DEBIAN_FRONTEND=noninteractive {README_PREREQUISITES}", workdir="/")
        assert ready.code == 0, ready.output[-3000:]
        yield fresh
    finally:
        subprocess.run([*tool, "rm", "--force", "--time", "5", name], capture_output=True, env=images.engine_env())
        subprocess.run(["rm", "-rf", str(source)], check=False)


@pytest.mark.timeout(1800)  # a cold `make up` installs the servers and every package from the registries
def test_a_newcomer_runs_make_up_on_a_bare_machine(machine: Machine) -> None:
    # Not root, nothing installed: plain words and the command that fixes it, not a traceback.
    machine.run("useradd --create-home newcomer && cp -r /src /home/newcomer/painkiller"
                " && chown -R newcomer /home/newcomer/painkiller", workdir="/")  # fmt: skip
    refused = machine.run("make up", user="newcomer", workdir="/home/newcomer/painkiller")
    assert refused.code != 0
    assert "sudo apt-get install -y nginx libnginx-mod-stream postgresql rabbitmq-server" in refused.output
    assert "Traceback" not in refused.output

    cold = machine.run(f"cp -r /src {CHECKOUT} && cd {CHECKOUT} && make up", workdir="/")
    assert cold.code == 0, cold.output[-5000:]
    assert "Painkiller is up at http://127.0.0.1:8080" in cold.output
    print(f"make up on a bare machine: {cold.seconds:.0f} s")

    # Through NGINX with a token: a patient, a reading, and the reading on the patient.
    patient_id = create_patient_with_a_reading(machine)
    # No `trust` anywhere: the stack's roles connected with their passwords.
    rules = machine.run("runuser -u postgres -- psql -XAtc \"SELECT count(*) FROM pg_hba_file_rules"
                        " WHERE auth_method = 'trust'\"", workdir="/")  # fmt: skip
    assert rules.stdout.strip() == "0", rules.output

    credentials = machine.run("sha256sum .run/credentials.json").stdout
    warm = machine.run("make up")
    assert warm.code == 0, warm.output[-5000:]
    for first_time_only in ("installing", "starting PostgreSQL", "starting RabbitMQ", "pip install"):
        assert first_time_only not in warm.output
    assert machine.run("sha256sum .run/credentials.json").stdout == credentials
    assert latest_heart_rate(machine, patient_id) == 88
    print(f"make up again: {warm.seconds:.0f} s")

    assert machine.run("make down").code == 0
    assert machine.run("curl -s -o /dev/null http://127.0.0.1:8080/").code != 0


def create_patient_with_a_reading(machine: Machine) -> str:
    api = 'curl -sf -H "Authorization: Bearer $(make -s token | tail -1)" -H "content-type: application/json"'
    created = machine.run(f"{api} -d '{{\"first_name\": \"Ada\", \"last_name\": \"Lovelace\", \"age\": 36}}'"
                          " http://127.0.0.1:8080/api/v1/patient")  # fmt: skip
    assert created.code == 0, created.output
    patient_id = str(json.loads(created.stdout)["id"])
    posted = machine.run(
        f"{api} -d '{{\"heart_rate_bpm\": 88}}' http://127.0.0.1:8080/api/v1/patient/{patient_id}/measurements"
    )
    assert posted.code == 0, posted.output
    deadline = time.monotonic() + 30
    while latest_heart_rate(machine, patient_id) != 88:  # the event goes round through RabbitMQ
        assert time.monotonic() < deadline, "the reading never reached the patient's latest vitals"
        time.sleep(1)
    return patient_id


def latest_heart_rate(machine: Machine, patient_id: str) -> float | None:
    read = machine.run('curl -sf -H "Authorization: Bearer $(make -s token | tail -1)"'
                       f" http://127.0.0.1:8080/api/v1/patient/{patient_id}")  # fmt: skip
    if read.code != 0:
        return None
    vitals = json.loads(read.stdout)["latest_vitals"]
    return vitals.get("heart_rate_bpm", {}).get("value")
