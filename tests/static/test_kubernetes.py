"""The Kubernetes manifests (deploy/kubernetes, doc/scaling.md), checked without a cluster: they
render with kustomize, the built-in kinds validate against Kubernetes' schemas, and the rules
of the deployment hold (probes, non-root, read-only, no secret in the manifests, every route
in the Ingress, the operators' clusters sized and backed up, the broker users' rights)."""

import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute

from measurement_service.spec import SPEC as MEASUREMENT
from painkiller_common.events.broker_access import ADMIN_USER, EXCHANGE, admin_grant, grant
from patient_service.spec import SPEC as PATIENT

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "deploy" / "kubernetes" / "overlays" / "production"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = Path(sys.executable).with_name("kubectl")  # from PyPI (requirements-dev.txt), never skipped
    assert kubectl.exists(), "kubectl (with kustomize) is needed to render deploy/kubernetes: make venv"
    out = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def test_the_built_in_kinds_validate_against_the_kubernetes_schemas(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    documents = tmp_path / "rendered.yaml"
    documents.write_text(yaml.safe_dump_all(rendered))
    validate = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run([str(validate), "--strict", "--quiet", str(documents)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    problems = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("WARN")]
    # The operators' kinds (CloudNativePG, RabbitMQ) have no schema here: WARN lines, checked below.
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


def test_every_deployment_is_hardened_probed_and_sized(rendered: list[dict[str, Any]]) -> None:
    deployments = of_kind(rendered, "Deployment")
    assert set(deployments) == {"patient-api", "patient-relay", "patient-consumer", "patient-dispatcher",
                                "measurement-api", "measurement-relay", "measurement-consumer",
                                "measurement-hl7"}  # fmt: skip
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert [c["name"] for c in pod["initContainers"]] == ["migrate"], name  # the schema first
        for container in [*pod["initContainers"], *pod["containers"]]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsUser"] != 0, name
            assert {"requests", "limits"} <= container["resources"].keys(), name
        [main] = pod["containers"]
        assert main["livenessProbe"] and main["readinessProbe"], name
        assert pod.get("restartPolicy", "Always") == "Always", name  # the kubelet restarts what dies
        if name.endswith("-api"):
            assert deployment["spec"]["replicas"] >= 2, name
            assert main["readinessProbe"]["httpGet"]["path"].endswith("/health/ready"), name
        else:
            assert main["livenessProbe"]["httpGet"] == {"path": "/live", "port": "metrics"}, name


def test_each_api_scales_and_survives_a_drain(rendered: list[dict[str, Any]]) -> None:
    autoscalers, budgets = of_kind(rendered, "HorizontalPodAutoscaler"), of_kind(rendered, "PodDisruptionBudget")
    for api in ("patient-api", "measurement-api"):
        assert autoscalers[api]["spec"]["minReplicas"] >= 2
        assert budgets[api]["spec"]["minAvailable"] >= 1
    # Workers run two of each too (tests/faults/test_replicas.py shows order does not matter).
    for name, deployment in of_kind(rendered, "Deployment").items():
        assert deployment["spec"]["replicas"] >= 2 and budgets[name]["spec"]["minAvailable"] == 1, name


def test_no_credential_is_written_in_the_manifests(rendered: list[dict[str, Any]]) -> None:
    assert of_kind(rendered, "Secret") == {}
    for deployment in of_kind(rendered, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        for container in [*pod["initContainers"], *pod["containers"]]:
            for var in container["env"]:
                if "PASSWORD" in var["name"]:
                    assert "secretKeyRef" in var["valueFrom"], var
                elif "value" in var and "://" in var["value"]:
                    # A URL with credentials takes its password from a secret variable, $(...).
                    assert re.search(r"://[^:/]+:\$\(\w+_PASSWORD\)@", var["value"]), var
    config = of_kind(rendered, "ConfigMap")["painkiller-config"]["data"]
    assert not [key for key in config if re.search("PASSWORD|SECRET|TOKEN$", key)]


def test_no_client_written_forwarded_address_is_believed(rendered: list[dict[str, Any]]) -> None:
    config = of_kind(rendered, "ConfigMap")["painkiller-config"]["data"]
    for service in ("PATIENT", "MEASUREMENT"):
        assert "*" not in config[f"{service}_FORWARDED_ALLOW_IPS"]


def test_every_api_route_reaches_its_service_through_the_ingress(rendered: list[dict[str, Any]]) -> None:
    [ingress] = of_kind(rendered, "Ingress").values()
    paths = [(p["path"], p["backend"]["service"]["name"]) for rule in ingress["spec"]["rules"]
             for p in rule["http"]["paths"]]  # fmt: skip
    # ingress-nginx tries regex locations longest first, as NGINX's own configuration is ordered.
    paths.sort(key=lambda path: len(path[0]), reverse=True)
    for spec, service in ((PATIENT, "patient-api"), (MEASUREMENT, "measurement-api")):
        for router in spec.routers():
            for route in router.routes:
                assert isinstance(route, APIRoute)
                url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
                backend = next((name for regex, name in paths if re.match(regex, url)), None)
                assert backend == service, (route.path, backend)


def test_the_databases_and_the_broker_come_from_operators_replicated_and_backed_up(
    rendered: list[dict[str, Any]],
) -> None:
    clusters = of_kind(rendered, "Cluster")
    assert set(clusters) == {"patients-db", "measurements-db"}
    backups = {doc["spec"]["cluster"]["name"] for doc in of_kind(rendered, "ScheduledBackup").values()}
    for name, cluster in clusters.items():
        assert cluster["apiVersion"] == "postgresql.cnpg.io/v1" and cluster["spec"]["instances"] == 3, name
        assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"], name
        assert cluster["spec"]["backup"]["retentionPolicy"] == "30d", name
        assert cluster["spec"]["postgresql"]["parameters"]["archive_timeout"] == "60s", name  # the recovery point
        assert name in backups, name
        roles = {role["name"]: role for role in cluster["spec"]["managed"]["roles"]}
        service = name.removesuffix("s-db")
        assert roles[f"painkiller_{service}_app"]["inRoles"] == [f"painkiller_{service}_runtime"]
        assert roles[f"painkiller_{service}_runtime"]["login"] is False
    [broker] = of_kind(rendered, "RabbitmqCluster").values()
    assert broker["spec"]["replicas"] == 3


def test_the_broker_users_have_exactly_the_rights_of_the_security_design(rendered: list[dict[str, Any]]) -> None:
    permissions = {doc["spec"]["user"]: doc["spec"]["permissions"] for doc in of_kind(rendered, "Permission").values()}
    topics = {doc["spec"]["user"]: doc["spec"]["permissions"] for doc in of_kind(rendered, "TopicPermission").values()}
    for rights in [*(grant(service, f"painkiller_{service}") for service in ("patient", "measurement")), admin_grant()]:
        assert permissions[rights.user] == {"configure": rights.configure, "write": rights.write, "read": rights.read}
        if rights.user != ADMIN_USER:
            assert topics[rights.user] == {"exchange": EXCHANGE, "write": rights.publish, "read": rights.bind}
    assert len(permissions) == 3


def test_only_the_migrations_know_the_broker_admin(rendered: list[dict[str, Any]]) -> None:
    for name, deployment in of_kind(rendered, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        for container in [*pod["initContainers"], *pod["containers"]]:
            env = {var["name"]: var for var in container["env"]}
            knows = any(var.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "broker-admin-amqp"
                        for var in env.values())  # fmt: skip
            assert knows == (container["name"] == "migrate"), (name, container["name"])
            service = name.split("-")[0].upper()
            assert (f"{service}_AMQP_ADMIN_URL" in env) == knows, (name, container["name"])


def test_each_service_reaches_only_its_own_database(rendered: list[dict[str, Any]]) -> None:
    policies = of_kind(rendered, "NetworkPolicy")
    assert policies["default-deny"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    for service in ("patient", "measurement"):
        egress = policies[f"{service}-egress"]["spec"]["egress"]
        clusters = {
            peer["podSelector"]["matchLabels"]["cnpg.io/cluster"]
            for rule in egress
            for peer in rule.get("to", [])
            if "cnpg.io/cluster" in peer.get("podSelector", {}).get("matchLabels", {})
        }
        assert clusters == {f"{service}s-db"}
    ingress_from = policies["apis-from-ingress"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    assert ingress_from["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}


def test_mllp_reaches_the_listener_with_the_monitors_own_addresses(rendered: list[dict[str, Any]]) -> None:
    """The listener checks each sender against its allow-list (doc/hl7.md): the Service must not
    replace the monitors' addresses with a node's, and only their network may reach the port."""
    service = of_kind(rendered, "Service")["measurement-hl7"]["spec"]
    assert (service["type"], service["externalTrafficPolicy"]) == ("LoadBalancer", "Local")
    assert [port["port"] for port in service["ports"]] == [2575]
    policy = of_kind(rendered, "NetworkPolicy")["hl7-from-monitors"]["spec"]
    [rule] = policy["ingress"]
    allowed = of_kind(rendered, "ConfigMap")["painkiller-config"]["data"]["MEASUREMENT_HL7_ALLOWED_SENDERS"]
    assert [peer["ipBlock"]["cidr"] for peer in rule["from"]] == allowed.split()
    assert of_kind(rendered, "PodDisruptionBudget")["measurement-hl7"]["spec"]["minAvailable"] == 1
