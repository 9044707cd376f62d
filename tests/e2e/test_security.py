"""The security suite, through the real NGINX (and straight to a service for the 401 case):
tokens, scopes, the patient context, audit, least privilege on PostgreSQL and RabbitMQ, forged
events, logs without patient data, and NGINX's limits, hosts, methods and TLS (doc/security.md)."""

import base64
import dataclasses
import hashlib
import hmac
import json
import shutil
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pika
import pytest
import stack as stack_module
from cryptography.hazmat.primitives.asymmetric import ec
from harness import E2E_DATABASES, bearer, eventually, free_port, observer_url, vhost_of
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy import create_engine, text

from painkiller_common.contracts import EXCHANGE, VITALS
from painkiller_common.events.topology import (
    DEAD_LETTERS,
    MEASUREMENT_EVENTS_FOR_PATIENTS,
    PATIENT_EVENTS_FOR_MEASUREMENTS,
    UNROUTED,
)
from painkiller_testing.devauth import DEV_AUDIENCE, DEV_ISSUER, JWKS, PRIVATE_KEY

P = "00000000-0000-4000-8000-00000000000{}"  # stand-ins, filled with real ids per test
# Every route of both APIs with a body it accepts: (method, path, json body or CSV).
ROUTES = [
    ("POST", "/api/v1/patient", {"first_name": "A", "last_name": "B", "age": 3}),
    ("POST", "/api/v1/patient/import", b"patient_id,first_name,last_name,age,condition\n"),
    ("GET", "/api/v1/patient", None),
    ("POST", "/api/v1/patient/list", {}),
    ("GET", "/api/v1/patient/at-risk", None),
    ("GET", "/api/v1/patient/audit?patient_id={patient}", None),
    ("GET", "/api/v1/patient/{patient}", None),
    ("GET", "/api/v1/patient/{patient}/risk", None),
    ("GET", "/api/v1/patient/{patient}/chart", None),
    ("GET", "/api/v1/patient/{patient}/exists", None),
    ("GET", "/api/v1/patient/wards/4B/events", None),
    ("POST", "/api/v1/patient/identifiers", {"mrns": ["MRN-1"]}),
    (
        "POST",
        "/api/v1/patient/admissions",
        {"event": "A02", "mrn": "MRN-1", "sender": "PAS@H", "location": {"ward": "4"}},
    ),
    ("PATCH", "/api/v1/patient/{patient}", {"age": 4}),
    ("DELETE", "/api/v1/patient/{patient}", None),
    ("POST", "/api/v1/patient/delete/{patient}", None),
    ("POST", "/api/v1/patient/{patient}/measurements", {"heart_rate_bpm": 70}),
    ("POST", "/api/v1/patient/{patient}/measurements/batch", {"readings": [{"heart_rate_bpm": 70}]}),
    ("GET", "/api/v1/patient/{patient}/measurements", None),
    ("POST", "/api/v1/measures", {"patient_id": "{patient}", "heart_rate_bpm": 70}),
    ("POST", "/api/v1/measures/batch", {"readings": [{"patient_id": "{patient}", "heart_rate_bpm": 70}]}),
    ("GET", "/api/v1/measures", None),
    ("POST", "/api/v1/measures/list", {}),
    ("GET", "/api/v1/measures/audit?patient_id={patient}", None),
    ("GET", "/api/v1/measures/hl7/held", None),
    ("GET", "/api/v1/measures/{measurement}", None),
    ("DELETE", "/api/v1/measures/{measurement}", None),
    ("POST", "/api/v1/measures/delete/{measurement}", None),
    ("GET", "/api/v1/measurements/{measurement}", None),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]


def claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    base = {"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": "mallory", "scope": "user/*.cruds", "exp": now + 600}
    return {**base, **changes}


def kid(stack: stack_module.Stack) -> str:
    return json.loads((stack.auth_dir / JWKS).read_text())["keys"][0]["kid"]


def signed(stack: stack_module.Stack, payload: dict[str, object]) -> str:
    key = (stack.auth_dir / PRIVATE_KEY).read_bytes()
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": kid(stack)})


def tampered(stack: stack_module.Stack) -> str:
    header, _, signature = signed(stack, claims(scope="user/Patient.r")).split(".")
    return f"{header}.{b64(claims())}.{signature}"


def other_key(stack: stack_module.Stack) -> str:
    return jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid(stack)})


def b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def alg_none(stack: stack_module.Stack) -> str:
    return f"{b64({'alg': 'none', 'kid': kid(stack)})}.{b64(claims())}."


def hmac_with_public_key(stack: stack_module.Stack) -> str:
    # The classic confusion attack: the public JWKS used as an HMAC secret (signed by hand:
    # PyJWT itself refuses to do it).
    signing_input = f"{b64({'alg': 'HS256', 'kid': kid(stack)})}.{b64(claims())}"
    secret = (stack.auth_dir / JWKS).read_bytes()
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


BAD_TOKENS: dict[str, Callable[[stack_module.Stack], str]] = {
    "garbage": lambda s: "not-a-jwt",
    "tampered payload": tampered,
    "wrong signature": other_key,
    "alg none": alg_none,
    "HMAC": hmac_with_public_key,
    "expired": lambda s: signed(s, claims(exp=int(time.time()) - 120)),
    "not yet valid": lambda s: signed(s, claims(nbf=int(time.time()) + 300)),
    "wrong audience": lambda s: signed(s, claims(aud="another-api")),
    "wrong issuer": lambda s: signed(s, claims(iss="https://evil.example")),
}


@dataclasses.dataclass
class World:
    """Two patients with a reading each, made by a clinician."""

    patient: str
    other: str
    measurement: str
    other_measurement: str

    def fill(self, value: object, *, patient: str | None = None, measurement: str | None = None) -> object:
        ids = {"patient": patient or self.patient, "measurement": measurement or self.measurement}
        if isinstance(value, str):
            return value.format(**ids)
        if isinstance(value, dict | list):
            return json.loads(json.dumps(value).replace("{patient}", ids["patient"]))
        return value


@pytest.fixture
def world(api: httpx.Client) -> World:
    ids = []
    for name in ("Mine", "Theirs"):
        patient = api.post("/api/v1/patient", json={"first_name": name, "last_name": "Sec", "age": 50}).json()
        reading = api.post(f"/api/v1/patient/{patient['id']}/measurements", json={"heart_rate_bpm": 80}).json()
        ids += [patient["id"], reading["id"]]
    return World(patient=ids[0], other=ids[2], measurement=ids[1], other_measurement=ids[3])


def send(client: httpx.Client, route: tuple, world: World, headers: dict[str, str], **ids: str) -> httpx.Response:
    method, path, body = route
    url = world.fill(path, **ids)
    if isinstance(body, bytes):
        return client.request(method, url, content=body, headers={**headers, "content-type": "text/csv"})
    return client.request(method, url, json=world.fill(body, patient=ids.get("patient")), headers=headers)


def assert_401(response: httpx.Response, *, token_sent: bool) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) == token_sent


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_every_route_refuses_a_request_without_a_token(stack, api: httpx.Client, world: World, route) -> None:
    with httpx.Client(base_url=stack.url, timeout=10) as anonymous:
        assert_401(send(anonymous, route, world, {}), token_sent=False)


@pytest.mark.parametrize("bad", list(BAD_TOKENS), ids=list(BAD_TOKENS))
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_every_route_refuses_a_token_it_cannot_trust(stack, api: httpx.Client, world: World, route, bad) -> None:
    headers = {"Authorization": f"Bearer {BAD_TOKENS[bad](stack)}"}
    assert_401(send(api, route, world, headers), token_sent=True)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_every_route_refuses_a_token_without_its_scope(stack, api: httpx.Client, world: World, route) -> None:
    # Broad, but for another resource: what a misconfigured client of another system would hold.
    headers = bearer(stack, scope="user/Practitioner.cruds system/Device.cruds")
    response = send(api, route, world, headers)
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_a_patient_token_never_reaches_another_patient(stack, api: httpx.Client, world: World, route) -> None:
    scope = "patient/*.cruds"
    headers = bearer(stack, scope=scope, patient=world.patient, subject="home-app")
    response = send(api, route, world, headers, patient=world.other, measurement=world.other_measurement)
    # A record of another patient is hidden (404); a route for clinicians only is 403.
    assert response.status_code in (403, 404), response.text
    assert api.get(f"/api/v1/patient/{world.other}").status_code == 200  # nothing was deleted
    assert api.get(f"/api/v1/measures/{world.other_measurement}").status_code == 200


def test_a_patient_token_works_on_its_own_patient(stack, api: httpx.Client, world: World) -> None:
    own = bearer(stack, scope="patient/Patient.r patient/Observation.crs", patient=world.patient)
    assert api.get(f"/api/v1/patient/{world.patient}", headers=own).status_code == 200
    posted = api.post(f"/api/v1/patient/{world.patient}/measurements", json={"spo2_percent": 95}, headers=own)
    assert posted.status_code == 201


def test_a_service_reached_without_nginx_checks_the_token_itself(stack, world: World) -> None:
    direct = f"http://127.0.0.1:{stack.patient_port}/api/v1/patient/{world.patient}"
    assert_401(httpx.get(direct), token_sent=False)
    assert_401(httpx.get(direct, headers={"Authorization": "Bearer x.y.z"}), token_sent=True)
    assert httpx.get(direct, headers=bearer(stack)).status_code == 200


def test_docs_and_health_need_no_token(stack) -> None:
    for path in ("/api/v1/patient/docs", "/api/v1/measures/openapi.json", "/api/v1/patient/health/ready"):
        assert httpx.get(stack.url + path).status_code == 200


def test_the_openapi_documents_declare_the_bearer_scheme_and_scopes(stack) -> None:
    document = httpx.get(stack.url + "/api/v1/patient/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    read = document["paths"]["/api/v1/patient/{patient_id}"]["get"]
    assert read["security"] == [{"bearer": ["user/Patient.r", "patient/Patient.r", "system/Patient.r"]}]
    assert {"401", "403"} <= read["responses"].keys()


def test_refusals_and_reads_land_in_the_audit_trail(stack, api: httpx.Client, world: World) -> None:
    api.get(f"/api/v1/patient/{world.patient}", headers={**bearer(stack, subject="dr-who"), "X-Request-ID": "rid-1"})
    api.get(f"/api/v1/patient/{world.patient}", headers=bearer(stack, scope="user/Observation.r", subject="nosy"))
    api.get(f"/api/v1/patient/{world.patient}", headers={"Authorization": "Bearer junk"})
    rows = api.get("/api/v1/patient/audit", params={"patient_id": world.patient}).json()["items"]
    assert [(r["actor"], r["action"], r["status"]) for r in rows[:2]] == [
        ("nosy", "read", 403),
        ("dr-who", "read", 200),
    ]
    assert rows[1]["request_id"] == "rid-1"
    # Without a valid token: counted per address and minute, not a row each (doc/security.md).
    engine = create_engine(E2E_DATABASES["PATIENT_MIGRATION_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            counted = conn.execute(text("SELECT sum(requests) FROM refused_requests WHERE status = 401")).scalar()
    finally:
        engine.dispose()
    assert counted >= 1
    readings = api.get("/api/v1/measures/audit", params={"patient_id": world.patient}).json()["items"]
    assert (readings[-1]["action"], readings[-1]["resource_id"]) == ("create", world.measurement)


def test_a_client_cannot_spoof_its_address_in_the_audit_trail(stack, api: httpx.Client, world: World) -> None:
    api.get(f"/api/v1/patient/{world.patient}", headers={"X-Forwarded-For": "10.9.8.7", "X-Request-ID": "spoof"})
    engine = create_engine(E2E_DATABASES["PATIENT_MIGRATION_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            address = conn.execute(text("SELECT client_address FROM audit_events WHERE request_id = 'spoof'")).scalar()
    finally:
        engine.dispose()
    assert address == "127.0.0.1"


ALTERATIONS = ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events")


def test_audit_rows_cannot_be_altered_by_the_runtime_role(api: httpx.Client, world: World) -> None:
    for var in ("PATIENT_DATABASE_URL", "MEASUREMENT_DATABASE_URL"):
        engine = create_engine(E2E_DATABASES[var])
        try:
            for statement in (
                "UPDATE audit_events SET actor = 'x'",
                "DELETE FROM audit_events",
                "TRUNCATE audit_events",
            ):
                with pytest.raises(Exception, match="permission denied"), engine.begin() as conn:
                    conn.execute(text(statement))
        finally:
            engine.dispose()


def test_the_measurement_services_token_learns_existence_and_ids_and_nothing_more(
    stack, api: httpx.Client, world: World
) -> None:
    """It asks whether a patient exists (a reading for one created a moment ago) and which patient
    has an MRN (an HL7 message's); a leak of it must not reveal names."""
    with_mrn = api.post("/api/v1/patient", json={"mrn": "MRN-S1", "first_name": "A", "last_name": "B", "age": 5})
    token = (stack.auth_dir / "measurement-service.token").read_text().strip()
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as service:
        assert service.get(f"/api/v1/patient/{world.patient}/exists").status_code == 204
        assert service.get(f"/api/v1/patient/{uuid.uuid4()}/exists").status_code == 404
        found = service.post("/api/v1/patient/identifiers", json={"mrns": ["MRN-S1", "MRN-NOBODY"]})
        assert found.json() == {"patients": [{"mrn": "MRN-S1", "id": with_mrn.json()["id"]}]}
        assert service.get(f"/api/v1/patient/{world.patient}").status_code == 403
        assert service.get("/api/v1/patient", params={"name": "a"}).status_code == 403
        assert service.get(f"/fhir/Patient/{world.patient}").status_code == 403


FORGERIES = (
    "INSERT INTO audit_events (id, actor, action, resource_type, status) VALUES (1000000, 'x', 'read', 'Patient', 200)",
    "INSERT INTO audit_events (at, actor, action, resource_type, status)"
    " VALUES ('2020-01-01', 'x', 'read', 'Patient', 200)",
    "INSERT INTO audit_events (id, actor, action, resource_type, status) OVERRIDING SYSTEM VALUE"
    " VALUES (1000001, 'x', 'read', 'Patient', 200)",
)


@pytest.mark.parametrize("forgery", FORGERIES)
def test_the_runtime_role_cannot_choose_an_audit_rows_id_or_time(world: World, forgery: str) -> None:
    """A role that could set them could backdate a row, or take the id the next real one gets."""
    for var in ("PATIENT_DATABASE_URL", "MEASUREMENT_DATABASE_URL"):
        engine = create_engine(E2E_DATABASES[var])
        try:
            with pytest.raises(Exception, match="permission denied|cannot insert"), engine.begin() as conn:
                conn.execute(text(forgery))
        finally:
            engine.dispose()


@pytest.mark.parametrize("sent", ["a b", "x" * 65, "<script>", "evil\u202eid"])
def test_an_ill_formed_request_id_is_replaced_not_recorded(stack, api: httpx.Client, world: World, sent: str) -> None:
    """Straight to the API's own port, as an Ingress would: no NGINX to sanitise the header."""
    marker = f"rid-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{stack.patient_port}/api/v1/patient/{world.patient}"
    answer = httpx.get(url, headers={**bearer(stack, subject=marker), "X-Request-ID": sent.encode("utf-8")}, timeout=10)
    assert answer.status_code == 200
    engine = create_engine(E2E_DATABASES["PATIENT_MIGRATION_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            recorded = conn.execute(
                text("SELECT request_id FROM audit_events WHERE actor = :a"), {"a": marker}
            ).scalar()
    finally:
        engine.dispose()
    assert recorded is not None and recorded != sent and len(recorded) == 32 and recorded.isalnum()


def test_no_process_connects_as_a_superuser_or_as_guest(stack, api: httpx.Client, world: World) -> None:
    engine = create_engine(E2E_DATABASES["PATIENT_ADMIN_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            users = conn.execute(
                text(
                    "SELECT DISTINCT a.usename, r.rolsuper FROM pg_stat_activity a JOIN pg_roles r "
                    "ON r.rolname = a.usename WHERE a.datname IN ('patients_e2e', 'measurements_e2e')"
                )
            ).all()
    finally:
        engine.dispose()
    assert {name for name, _ in users} == {"painkiller_patient_app", "painkiller_measurement_app"}
    assert not any(superuser for _, superuser in users)
    rows = subprocess.run(
        ["rabbitmqctl", "-q", "--no-table-headers", "list_connections", "user", "vhost"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    listed = {user for user, vhost in (row.split("\t") for row in rows) if vhost == vhost_of(stack)}
    assert listed == {f"{vhost_of(stack)}-patient", f"{vhost_of(stack)}-measurement"}  # and so no guest


def publish(url: str, routing_key: str, body: bytes, user_id: str | None = None) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(
            message_id=str(uuid.uuid4()), user_id=user_id, delivery_mode=2, content_type="application/json"
        )
        channel.basic_publish(EXCHANGE, routing_key, body, properties=properties)
    finally:
        if connection.is_open:
            connection.close()


def test_a_broker_user_cannot_publish_outside_its_topic(stack, world: World) -> None:
    measurement_user = stack.env["MEASUREMENT_AMQP_URL"]
    event = {"type": "patient.deleted", "aggregate_id": world.patient, "aggregate_version": 99}
    user = f"{vhost_of(stack)}-measurement"
    with pytest.raises(ChannelClosedByBroker, match="ACCESS_REFUSED"):
        publish(measurement_user, "patient.deleted", json.dumps(event).encode(), user_id=user)
    with pytest.raises(ChannelClosedByBroker, match="PRECONDITION_FAILED"):  # user_id must be its own
        publish(measurement_user, "measurement.recorded", b"{}", user_id=f"{vhost_of(stack)}-patient")


def refused(url: str, operation: Callable[[BlockingChannel], object]) -> bool:
    """Whether the broker refuses `operation` to the user of `url` (a refusal closes the channel)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            operation(channel)
        except ChannelClosedByBroker as exc:
            return exc.reply_code == 403
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_a_service_user_cannot_change_the_topology_or_reach_queues_not_its_own(stack, world: World) -> None:
    """The shared topology is declared by an admin user at `migrate`: a service's user may only
    publish to the events exchange (its relay) and consume its own queues (its consumers)."""
    measurement = stack.env["MEASUREMENT_AMQP_URL"]
    patients_dead = MEASUREMENT_EVENTS_FOR_PATIENTS.dead_letter_queue
    forbidden: dict[str, Callable[[BlockingChannel], object]] = {
        "redeclare the events exchange": lambda c: c.exchange_declare(
            EXCHANGE, "topic", durable=True, arguments={"alternate-exchange": UNROUTED}
        ),
        "delete the events exchange": lambda c: c.exchange_delete(EXCHANGE),
        "declare a queue of its own service": lambda c: c.queue_declare("measurement_service.extra", durable=True),
        "bind its queue to more events": lambda c: c.queue_bind(
            PATIENT_EVENTS_FOR_MEASUREMENTS.name, EXCHANGE, routing_key="measurement.*"
        ),
        "purge the unrouted events": lambda c: c.queue_purge(UNROUTED),
        "purge its own dead letters": lambda c: c.queue_purge(PATIENT_EVENTS_FOR_MEASUREMENTS.dead_letter_queue),
        "publish into the other's dead letters": lambda c: c.basic_publish(DEAD_LETTERS, patients_dead, b"{}"),
        "publish straight into the other's queue": lambda c: c.basic_publish(
            "", MEASUREMENT_EVENTS_FOR_PATIENTS.name, b"{}"
        ),
        "read the other's queue": lambda c: c.basic_get(MEASUREMENT_EVENTS_FOR_PATIENTS.name),
    }
    allowed = {operation for operation, call in forbidden.items() if not refused(measurement, call)}
    assert allowed == set()
    # What it needs still works (its consumer reads the queue: every end-to-end test shows that).
    assert not refused(measurement, lambda c: c.queue_declare(PATIENT_EVENTS_FOR_MEASUREMENTS.name, passive=True))


def test_no_running_process_knows_the_superuser_or_the_broker_admin(stack) -> None:
    """Only `migrate` is given the admin URLs: a process that is broken into cannot use them."""
    processes = {info["name"]: info["pid"] for info in stack.supervisor.processes()}
    assert "patient-relay" in processes and "measurement-consumer" in processes
    for name, pid in processes.items():
        variables = [item.split(b"=", 1)[0].decode() for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")]
        assert [var for var in variables if "ADMIN" in var] == [], name


def dead_letters(stack, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(observer_url(vhost_of(stack))))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_forged_events_are_dead_lettered_and_change_nothing(stack, api: httpx.Client, world: World) -> None:
    queues = (PATIENT_EVENTS_FOR_MEASUREMENTS.dead_letter_queue, MEASUREMENT_EVENTS_FOR_PATIENTS.dead_letter_queue)
    before = [dead_letters(stack, queue) for queue in queues]

    def vitals() -> dict:
        return api.get(f"/api/v1/patient/{world.patient}").json()["latest_vitals"]

    # The real reading has arrived first: "nothing changed" is then about the forged events.
    eventually(lambda: "heart_rate_bpm" in vitals())
    # A patient.deleted from someone who is not the patient service (here the broker's admin).
    forged_delete = {
        "type": "patient.deleted",
        "event_id": str(uuid.uuid4()),
        "aggregate_id": world.patient,
        "aggregate_version": 99,
        "payload": {"id": world.patient},
    }
    publish(observer_url(vhost_of(stack)), "patient.deleted", json.dumps(forged_delete).encode())
    # A reading dated 2999 from the real measurement user: it would stay "latest" for ever.
    now = datetime.now(UTC).isoformat()
    reading = {
        "id": str(uuid.uuid4()),
        "patient_id": world.patient,
        "measured_at": "2999-01-01T00:00:00Z",
        "recorded_at": now,
        **dict.fromkeys(VITALS),
        "source": None,
        "heart_rate_bpm": 250,
    }
    future = {
        "type": "measurement.recorded",
        "event_id": str(uuid.uuid4()),
        "aggregate_id": reading["id"],
        "aggregate_version": 1,
        "payload": reading,
    }
    user = f"{vhost_of(stack)}-measurement"
    publish(stack.env["MEASUREMENT_AMQP_URL"], "measurement.recorded", json.dumps(future).encode(), user_id=user)

    eventually(lambda: [dead_letters(stack, queue) for queue in queues] == [n + 1 for n in before])
    assert vitals()["heart_rate_bpm"]["value"] == 80
    listed = api.get(f"/api/v1/patient/{world.patient}/measurements").json()["items"]
    assert [m["id"] for m in listed] == [world.measurement]


def test_a_canary_name_appears_in_no_log_and_no_trace(stack, api: httpx.Client) -> None:
    """Logs of every process and NGINX's, and every span exported (the test stack writes them all,
    with their attributes, under traces/): searches carry names in their query strings."""
    canary = f"Canary{uuid.uuid4().hex[:10]}"
    created = api.post("/api/v1/patient", json={"first_name": canary, "last_name": canary, "mrn": canary, "age": 9})
    assert created.status_code == 201
    api.get("/api/v1/patient", params={"name": canary})
    api.get("/api/v1/patient", params={"mrn": canary})
    api.post("/api/v1/patient/list", json={"name": canary})
    api.post("/api/v1/patient", json={"first_name": canary, "last_name": canary, "mrn": canary, "age": 9})  # 409
    api.patch(f"/api/v1/patient/{created.json()['id']}", json={"first_name": canary + "\u202e"})  # 422
    api.get("/fhir/Patient", params={"name": canary})
    api.get("/fhir/Patient", params={"identifier": canary, "birthdate": "1941-12-09"})
    logs = [*Path(stack.run_dir).rglob("*.log"), *Path(stack.run_dir).rglob("*.jsonl")]
    assert any(path.suffix == ".jsonl" and "GET /fhir/Patient" in path.read_text() for path in logs)
    leaking = [str(path) for path in logs if canary in path.read_text(errors="replace")]
    assert leaking == []


@pytest.fixture
def strict_nginx(stack) -> Iterator[stack_module.Stack]:
    """A second NGINX in front of the same services, with small limits."""
    run_dir = Path(tempfile.mkdtemp(prefix="painkiller-nginx-"))
    run_dir.chmod(0o755)
    strict = dataclasses.replace(
        stack,
        run_dir=run_dir,
        nginx_port=free_port(),
        tls_port=free_port(),
        hl7_port=free_port(),
        hl7_tls_port=free_port(),
        rate_limit_rps=2,
        rate_limit_burst=3,
    )
    process = stack_module.start_nginx(strict)
    stack_module.wait_ready(strict.url + "/api/v1/patient/health/live", process=process)
    try:
        yield strict
    finally:
        stack_module.stop([process])
        shutil.rmtree(run_dir, ignore_errors=True)


def test_nginx_errors_log_no_query_string(strict_nginx, stack) -> None:
    """A 429 or a 502 is an error NGINX logs with the request line; the query holds names."""
    canary = f"Canary{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=strict_nginx.url, timeout=5, headers=bearer(stack)) as client:
        limited = [client.get("/api/v1/patient", params={"name": canary}).status_code for _ in range(10)]
        assert 429 in limited
        time.sleep(1.5)  # the burst back
        stack.supervisor.stop_program("patient-api")
        try:
            assert client.get("/api/v1/patient", params={"name": canary}).status_code == 502
        finally:
            stack.supervisor.start_program("patient-api")
            stack_module.wait_ready(stack.url + "/api/v1/patient/health/ready")
    logs = list(Path(strict_nginx.run_dir).rglob("*.log"))
    assert any("upstream=" in path.read_text() for path in logs)  # the access log has what happened
    assert [str(path) for path in logs if canary in path.read_text(errors="replace")] == []


def test_nginx_limits_requests_per_address_with_429_problems(strict_nginx) -> None:
    time.sleep(1)  # the readiness probes above spent some of the burst
    with httpx.Client(base_url=strict_nginx.url, timeout=5) as client:
        statuses = [client.get("/api/v1/patient/health/live") for _ in range(20)]
    limited = [r for r in statuses if r.status_code == 429]
    assert len(limited) >= 10
    assert limited[0].headers["content-type"] == "application/problem+json"
    assert limited[0].headers["retry-after"] == "1"
    assert limited[0].json()["status"] == 429


def test_nginx_serves_only_its_own_host_names(stack) -> None:
    response = httpx.get(stack.url + "/api/v1/patient/health/live", headers={"Host": "evil.example"})
    assert response.status_code == 421
    assert response.headers["content-type"] == "application/problem+json"
    ok = httpx.get(stack.url + "/api/v1/patient/health/live", headers={"Host": "localhost"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "path,allow",
    [
        ("/api/v1/patient", "GET, POST"),
        ("/api/v1/patient/list", "POST"),
        (f"/api/v1/patient/{uuid.uuid4()}/measurements", "GET, POST"),
        ("/api/v1/measures/batch", "POST"),
    ],
)
def test_trace_is_a_405_problem_naming_the_paths_methods(stack, path: str, allow: str) -> None:
    """NGINX refuses TRACE itself; the 405 still names what that path serves, like any other."""
    response = httpx.request("TRACE", stack.url + path)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get_list("allow") == [allow]


def test_every_answer_carries_the_security_headers(stack) -> None:
    for response in (
        httpx.get(stack.url + "/api/v1/patient/health/live"),
        httpx.get(stack.url + "/api/v1/patient/" + str(uuid.uuid4())),  # 401
        httpx.get(stack.url + "/nowhere"),  # NGINX's own 404
    ):
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in response.headers  # plain HTTP: HSTS means nothing


def test_https_with_tls_1_2_or_newer_and_hsts(stack) -> None:
    certificate = stack.run_dir / "tls" / "cert.pem"
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ssl.create_default_context(cafile=str(certificate))
        context.minimum_version = context.maximum_version = version
        with httpx.Client(verify=context) as client:
            response = client.get(f"https://localhost:{stack.tls_port}/api/v1/patient/health/live")
        assert response.status_code == 200
        assert response.headers["strict-transport-security"].startswith("max-age=")
    old = ssl.create_default_context(cafile=str(certificate))
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=old) as client:
        client.get(f"https://localhost:{stack.tls_port}/api/v1/patient/health/live")
