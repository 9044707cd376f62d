"""What each service's RabbitMQ user may do, in one place: `make up` applies it with rabbitmqctl,
compose loads it as a definitions file (`python -m painkiller_common.broker_access`).

A service's user may configure, write and read only the shared exchanges and its own queues, and
topic permissions let it publish only its own event types (`patient.*` or `measurement.*`) and
bind only to the events it consumes (BINDS). Never `guest` (doc/security.md).
"""

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass

SERVICES = ("patient", "measurement")
OTHER = {"patient": "measurement", "measurement": "patient"}
# Whose events each service's queues may bind to: the other's, and for the patient service its
# own too, which its webhook dispatcher sends on (doc/alerts.md).
BINDS = {"patient": "measurement|patient", "measurement": "patient"}
SHARED_TOPOLOGY = r"painkiller\.(events|unrouted|dead)"
EVENTS_EXCHANGE = "painkiller.events"


@dataclass(frozen=True)
class Grant:
    user: str
    resources: str  # configure, write and read: the same names
    publish: str  # topic permission, write
    bind: str  # topic permission, read


def grant(service: str, user: str) -> Grant:
    return Grant(
        user=user,
        resources=rf"^({SHARED_TOPOLOGY}|{service}_service\..*)$",
        publish=rf"^{service}\.",
        bind=rf"^({BINDS[service]})\.",
    )


def password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(vhost: str, passwords: dict[str, str]) -> dict[str, object]:
    """A definitions file with one user per service and their rights in `vhost`."""
    grants = [grant(service, f"painkiller_{service}") for service in SERVICES]
    return {
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": g.user,
                "password_hash": password_hash(passwords[service]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for service, g in zip(SERVICES, grants, strict=True)
        ],
        "permissions": [
            {"user": g.user, "vhost": vhost, "configure": g.resources, "write": g.resources, "read": g.resources}
            for g in grants
        ],
        "topic_permissions": [
            {"user": g.user, "vhost": vhost, "exchange": EVENTS_EXCHANGE, "write": g.publish, "read": g.bind}
            for g in grants
        ],
    }


def main() -> None:
    """Print the definitions for PATIENT_AMQP_PASSWORD and MEASUREMENT_AMQP_PASSWORD (both required)."""
    passwords = {service: os.environ[f"{service.upper()}_AMQP_PASSWORD"] for service in SERVICES}
    print(json.dumps(definitions(os.environ.get("AMQP_VHOST", "/"), passwords), indent=2))


if __name__ == "__main__":
    main()
