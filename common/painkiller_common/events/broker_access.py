"""What each RabbitMQ user may do, in one place: `make up` applies it with rabbitmqctl, compose
loads it as a definitions file (`python -m painkiller_common.events.broker_access`), and the Kubernetes
manifests are checked against it.

A service's user configures nothing: the shared exchanges and every queue are declared at
`migrate` by a broker admin user that no running process knows. The service's user may write only
to the events exchange (its relay), with topic permissions that let it publish only its own event
types (`patient.*` or `measurement.*`), and read only the queues its consumers take events from
(not their dead-letter queues, not anyone else's). Never `guest` (doc/security.md).
"""

import base64
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass

from painkiller_common.events.topology import EXCHANGE, QUEUES

SERVICES = ("patient", "measurement")
OTHER = {"patient": "measurement", "measurement": "patient"}
EVENTS_EXCHANGE = EXCHANGE
ADMIN_USER = "painkiller_broker_admin"
NOTHING = "^$"  # RabbitMQ's way of saying "no resource"
EVERYTHING = ".*"


@dataclass(frozen=True)
class Grant:
    user: str
    configure: str
    write: str
    read: str
    publish: str  # topic permission on the events exchange, write
    bind: str  # topic permission on the events exchange, read


def grant(service: str, user: str) -> Grant:
    own_queues = "|".join(re.escape(queue.name) for queue in QUEUES[service])
    return Grant(
        user=user,
        configure=NOTHING,
        write=rf"^{re.escape(EVENTS_EXCHANGE)}$",
        read=rf"^({own_queues})$",
        publish=rf"^{service}\.",
        bind=NOTHING,  # the admin binds the queues at `migrate`
    )


def admin_grant(user: str = ADMIN_USER) -> Grant:
    """Declares the topology at `migrate`; the tests' observers use it too. No management tag."""
    return Grant(user, EVERYTHING, EVERYTHING, EVERYTHING, EVERYTHING, EVERYTHING)


def password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(vhost: str, passwords: dict[str, str], admin_password: str) -> dict[str, object]:
    """A definitions file with the admin user and one user per service, and their rights in `vhost`."""
    grants = [admin_grant(), *(grant(service, f"painkiller_{service}") for service in SERVICES)]
    return users_definitions(vhost, grants, [admin_password, *(passwords[s] for s in SERVICES)])


def users_definitions(vhost: str, grants: list[Grant], passwords: list[str]) -> dict[str, object]:
    """Users with `passwords` and the rights of `grants` in `vhost`, as one definitions document:
    RabbitMQ loads it at boot (compose) or imports it in one call (`rabbitmqctl import_definitions`)."""
    return {
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": g.user,
                "password_hash": password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for g, password in zip(grants, passwords, strict=True)
        ],
        "permissions": [
            {"user": g.user, "vhost": vhost, "configure": g.configure, "write": g.write, "read": g.read} for g in grants
        ],
        "topic_permissions": [
            {"user": g.user, "vhost": vhost, "exchange": EVENTS_EXCHANGE, "write": g.publish, "read": g.bind}
            for g in grants
        ],
    }


def main() -> None:
    """Print the definitions for PATIENT_AMQP_PASSWORD, MEASUREMENT_AMQP_PASSWORD and
    AMQP_ADMIN_PASSWORD (all required)."""
    passwords = {service: os.environ[f"{service.upper()}_AMQP_PASSWORD"] for service in SERVICES}
    vhost = os.environ.get("AMQP_VHOST", "/")
    print(json.dumps(definitions(vhost, passwords, os.environ["AMQP_ADMIN_PASSWORD"]), indent=2))


if __name__ == "__main__":
    main()
