"""The faulty stack every fault test drives, and what they do to it.

A stack of its own (APIs, relays, consumers, dispatcher, NGINX, under their supervisor) in a
RabbitMQ vhost of its own, with TCP proxies in front of the measurement relay's and the patient
consumer's broker connections and of the patient consumer's database, so that a test can freeze,
cut or take down each link.
"""

import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import RABBITMQ, bearer, broker, eventually, observer_url, running_stack, stack_module
from proxy import Proxy
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tally import DATABASE_OF, FAULT_DATABASES, Tally, tally

BROKER = (RABBITMQ.split(":")[0], int(RABBITMQ.split(":")[1]))
CONVERGE_S = 90  # workers reconnect with back-off of up to 10 s


@dataclass
class Faulty:
    stack: stack_module.Stack
    amqp_url: str  # the test's own connection, not one of the stack's users
    relay_proxy: Proxy  # between the measurement relay and RabbitMQ
    consumer_proxy: Proxy  # between the patient consumer and RabbitMQ
    consumer_db_proxy: Proxy  # between the patient consumer and PostgreSQL
    hl7_db_proxy: Proxy  # between the MLLP listener and PostgreSQL
    client: httpx.Client
    replicas: int = 1  # of every process; each proxy stands in front of every replica of its kind
    killed: Counter[str] = field(default_factory=Counter)  # SIGKILLs sent, by process name

    def named(self, scenario: str) -> str:
        return scenario if self.replicas == 1 else f"{scenario}, {self.replicas} of each"


# The tally scenarios run with one and with two of every process (doc/scaling.md).
BOTH = pytest.mark.parametrize("faulty", [1, 2], ids=["1 of each", "2 of each"], indirect=True)


@pytest.fixture
def faulty(request: pytest.FixtureRequest) -> Iterator[Faulty]:
    replicas = getattr(request, "param", 1)
    relay_proxy, consumer_proxy = Proxy(BROKER), Proxy(BROKER)
    consumer_db = make_url(FAULT_DATABASES["PATIENT_DATABASE_URL"])
    consumer_db_proxy = Proxy((consumer_db.host or "127.0.0.1", consumer_db.port or 5432))
    proxied_db = consumer_db.set(host="127.0.0.1", port=consumer_db_proxy.port).render_as_string(hide_password=False)
    hl7_db = make_url(FAULT_DATABASES["MEASUREMENT_DATABASE_URL"])
    hl7_db_proxy = Proxy((hl7_db.host or "127.0.0.1", hl7_db.port or 5432))
    hl7 = {
        "MEASUREMENT_DATABASE_URL": hl7_db.set(host="127.0.0.1", port=hl7_db_proxy.port).render_as_string(
            hide_password=False
        ),
        "MEASUREMENT_DB_POOL_TIMEOUT_S": "1",  # a database down is an AE within a second
    }
    with broker() as users:
        relay = {"MEASUREMENT_AMQP_URL": users.url("measurement", f"127.0.0.1:{relay_proxy.port}")}
        consumer = {
            "PATIENT_AMQP_URL": users.url("patient", f"127.0.0.1:{consumer_proxy.port}"),
            "PATIENT_DATABASE_URL": proxied_db,
        }
        overrides = {
            **{name: relay for name in stack_module.instances(replicas) if name.startswith("measurement-relay")},
            **{name: consumer for name in stack_module.instances(replicas) if name.startswith("patient-consumer")},
            "measurement-hl7": hl7,
        }
        with (
            running_stack(FAULT_DATABASES, users, overrides, replicas=replicas) as stack,
            httpx.Client(base_url=stack.url, timeout=10, headers=bearer(stack)) as client,
        ):
            yield Faulty(
                stack,
                observer_url(users.vhost),
                relay_proxy,
                consumer_proxy,
                consumer_db_proxy,
                hl7_db_proxy,
                client,
                replicas,
            )
    for proxy in (relay_proxy, consumer_proxy, consumer_db_proxy, hl7_db_proxy):
        proxy.close()


def create_patients(client: httpx.Client, count: int) -> list[str]:
    ids = []
    for i in range(count):
        response = client.post("/api/v1/patient", json={"first_name": f"P{i}", "last_name": "Fault", "age": 50})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return ids


def post_readings(client: httpx.Client, patient_ids: list[str], per_patient: int) -> tuple[int, int]:
    """Post readings with rising heart rates; (attempted, committed)."""
    attempted = committed = 0
    for n in range(per_patient):
        for patient_id in patient_ids:
            attempted += 1
            response = client.post(f"/api/v1/patient/{patient_id}/measurements", json={"heart_rate_bpm": 60 + n})
            committed += response.status_code == 201
    return attempted, committed


def replicas_of(stack: stack_module.Stack, kind: str) -> list[str]:
    return [name for name in stack_module.instances(stack.replicas) if stack_module.kind_of(name)[0] == kind]


def kill9(stack: stack_module.Stack, kind: str) -> dict[str, int]:
    """Every replica of that kind, at once; the pids killed, by name. The supervisor starts them
    again at once (`restarted`)."""
    killed = {name: stack.supervisor.pid(name) for name in replicas_of(stack, kind)}
    for pid in killed.values():
        os.kill(pid, signal.SIGKILL)
    return killed


def restarted(stack: stack_module.Stack, killed: dict[str, int]) -> None:
    """Wait until the supervisor has started each killed process again."""
    for name, pid in killed.items():
        stack.supervisor.wait_running(name, not_pid=pid)


def signal_all(stack: stack_module.Stack, kind: str, signum: int) -> None:
    for name in replicas_of(stack, kind):
        os.kill(stack.supervisor.pid(name), signum)


def pending(producer: str) -> int:
    engine = create_engine(FAULT_DATABASES[DATABASE_OF[producer]])
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()
    finally:
        engine.dispose()


def tally_once(
    run_dir: Path, producer: str, until: Callable[[Tally], bool], *, timeout_s: float = 20, **counts: Any
) -> Tally:
    """The tally of `producer`'s events, as soon as `until` holds for it. If it never does, the
    failure says what was last seen, and how many events still wait in the producer's outbox (the
    relay's side) as against delivered but not applied (the consumer's)."""
    seen: list[Tally] = []

    def holds() -> Tally | None:
        seen[:] = [tally(run_dir, producer, **counts)]
        return seen[0] if until(seen[0]) else None

    try:
        return eventually(holds, timeout_s=timeout_s)
    except AssertionError:
        raise AssertionError(f"{producer} after {timeout_s}s: {seen}, unpublished {pending(producer)}") from None


def converged(run_dir: Path, producer: str, **counts: Any) -> Tally:
    """The tally once every event the producer committed has been applied."""
    return tally_once(run_dir, producer, lambda t: t.lost == 0, timeout_s=CONVERGE_S, **counts)


def warm_up(f: Faulty) -> list[str]:
    """A patient with one reading whose events went all the way round: every worker is connected."""
    patient_ids = create_patients(f.client, 1)
    post_readings(f.client, patient_ids, 1)
    converged(f.stack.run_dir, "patient_service", attempted=0, committed=0)
    converged(f.stack.run_dir, "measurement_service", attempted=0, committed=0)
    # The webhook dispatchers too: a consumer connecting late, while a test has cut the
    # topology, would find its queue missing and wait out a back-off the test does not expect.
    dispatchers = list(f.stack.run_dir.glob("patient-dispatcher*.log"))
    eventually(lambda: all("consuming patient_service.webhook_events" in log.read_text() for log in dispatchers))
    assert len(dispatchers) == f.replicas
    return patient_ids
