"""What a stack needs before its processes start: credentials, broker users, keys, a certificate.

Used by `make up` (scripts/stack.py) and the tests (tests/harness.py), so both run the stack with
the same least-privilege set-up: each service's own PostgreSQL roles and RabbitMQ user, tokens
signed by a dev key, and HTTPS with a self-signed certificate (doc/security.md).
"""

import datetime
import ipaddress
import json
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from painkiller_common.events.broker_access import OTHER, SERVICES, admin_grant, grant, users_definitions
from painkiller_testing.devauth import DEV_AUDIENCE, DEV_ISSUER, ensure_dev_key, mint

# How long the measurement service's own token for the patient service lives in dev.
SERVICE_TOKEN_TTL_S = 30 * 24 * 3600


def rabbitmqctl(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], input=stdin, text=True, check=True, capture_output=True)


def load_secrets(path: Path) -> dict[str, str]:
    """Passwords of this stack's roles and users, made once and kept (0600) under the run dir; one
    that an older checkout did not make is added."""
    kept = json.loads(path.read_text()) if path.exists() else {}
    names = [f"{service}_{kind}" for service in SERVICES for kind in ("db", "owner", "amqp")] + ["broker_admin"]
    made = {**kept, **{name: kept.get(name) or secrets.token_urlsafe(24) for name in names}}
    if made != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(made, indent=2))
    return made


def database_env(
    service: str, admin_url: str, database: str, passwords: dict[str, str] | None = None
) -> dict[str, str]:
    """The three URLs of a service's database: the superuser that provisions, the owner that
    migrates, and the runtime role the processes connect as."""
    base, _, _ = admin_url.rpartition("/")
    host = base.split("@", 1)[1]
    scheme = base.split("://", 1)[0]

    def url(role: str, password: str | None) -> str:
        credentials = f"{role}:{quote(password, safe='')}" if password else role
        return f"{scheme}://{credentials}@{host}/{database}"

    prefix = service.upper()
    passwords = passwords or {}
    return {
        f"{prefix}_ADMIN_DATABASE_URL": f"{base}/postgres",
        f"{prefix}_MIGRATION_DATABASE_URL": url(f"painkiller_{service}_owner", passwords.get(f"{service}_owner")),
        f"{prefix}_DATABASE_URL": url(f"painkiller_{service}_app", passwords.get(f"{service}_db")),
    }


@dataclass(frozen=True)
class BrokerUsers:
    """One RabbitMQ user per service, with rights in one virtual host only, and the admin user
    that declares the topology there at `migrate`."""

    vhost: str
    names: dict[str, str]  # service -> user name
    passwords: dict[str, str]
    admin: str
    admin_password: str
    address: str = "127.0.0.1:5672"

    def url(self, service: str, address: str | None = None) -> str:
        return self._url(self.names[service], self.passwords[service], address)

    def admin_url(self, address: str | None = None) -> str:
        return self._url(self.admin, self.admin_password, address)

    def _url(self, user: str, password: str, address: str | None) -> str:
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"amqp://{credentials}@{address or self.address}/{quote(self.vhost, safe='')}"

    def env(self) -> dict[str, str]:
        """Every process's broker settings; the admin's are for `migrate` only (stack.py keeps
        them from the running processes)."""
        env = {}
        for service in SERVICES:
            env[f"{service.upper()}_AMQP_URL"] = self.url(service)
            env[f"{service.upper()}_AMQP_ADMIN_URL"] = self.admin_url()
            env[f"{service.upper()}_EVENT_PRODUCER"] = self.names[OTHER[service]]
        return env

    def create(self) -> None:
        """Create (or reset) the users and give each only what it uses: one definitions import, as
        each rabbitmqctl call costs a second or more."""
        grants = [admin_grant(self.admin), *(grant(service, self.names[service]) for service in SERVICES)]
        passwords = [self.admin_password, *(self.passwords[service] for service in SERVICES)]
        # On standard input: no file holds the password hashes, even for a moment.
        rabbitmqctl("import_definitions", stdin=json.dumps(users_definitions(self.vhost, grants, passwords)))

    def delete(self) -> None:
        for user in (self.admin, *self.names.values()):
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, check=False)


# Whether a patient exists (a reading's patient), which patient has an MRN, and admissions,
# transfers and discharges (HL7 v2's, doc/hl7.md).
MEASUREMENT_SERVICE_SCOPE = "system/PatientExistence.r system/PatientIdentifier.s system/PatientAdmission.cu"


def auth_env(auth_dir: Path) -> dict[str, str]:
    """Both services trust the dev key; the measurement service gets its own token, which may ask
    whether a patient exists and which patient has an MRN, and nothing more."""
    jwks = ensure_dev_key(auth_dir)
    token_file = auth_dir / "measurement-service.token"
    token_file.touch(mode=0o600)
    token_file.write_text(
        mint(auth_dir, scope=MEASUREMENT_SERVICE_SCOPE, subject="measurement-service", ttl_s=SERVICE_TOKEN_TTL_S)
    )
    return {
        "AUTH_ISSUER": DEV_ISSUER,
        "AUTH_AUDIENCE": DEV_AUDIENCE,
        "AUTH_JWKS_FILE": str(jwks),
        "MEASUREMENT_PATIENT_SERVICE_TOKEN_FILE": str(token_file),
    }


def dev_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (made once), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
