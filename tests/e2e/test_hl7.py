"""HL7 v2 over MLLP end to end (doc/hl7.md): raw sockets to NGINX's stream ports, the readings
read back through the JSON API."""

import dataclasses
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import eventually, free_port, stack_module

from painkiller_testing.hl7 import END, START, MllpClient, adt, frame, loinc, news2_set, pcd01, stamp

pytestmark = pytest.mark.usefixtures("empty_databases")


@pytest.fixture
def mllp(stack):
    client = MllpClient(stack.hl7_port)
    yield client
    client.close()


def patient(api: httpx.Client, mrn: str) -> str:
    created = api.post("/api/v1/patient", json={"mrn": mrn, "first_name": "Ada", "last_name": "Smith", "age": 70})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def readings(api: httpx.Client, patient_id: str) -> list[dict]:
    answer = api.get(f"/api/v1/patient/{patient_id}/measurements")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_a_pcd01_message_is_stored_as_one_reading_in_the_apis_units(api, mllp) -> None:
    patient_id = patient(api, "MRN-7001")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)

    ack = mllp.exchange(pcd01("CTRL-1", "MRN-7001", at=at))

    assert ack["MSA"][1:3] == ["AA", "CTRL-1"]
    assert ack["MSH"][2:6] == ["PAINKILLER", "HOSP", "AcmeMonitor^0012345678ABCDEF^EUI-64", "ICU-4"]
    assert ack["MSH"][8] == "ACK^R01^ACK"
    [reading] = readings(api, patient_id)
    assert reading["measured_at"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert reading["spo2_percent"] == 96
    assert reading["heart_rate_bpm"] == 72  # the pulse rate: the ECG's was not a stored status (X)
    assert (reading["systolic_mmhg"], reading["diastolic_mmhg"]) == (117, 78)  # from kPa
    assert reading["respiratory_rate_bpm"] == 18
    assert reading["temperature_c"] == 37.5  # from degrees Fahrenheit


def test_a_whole_news2_set_from_a_monitor_scores_the_patient(api, mllp) -> None:
    patient_id = patient(api, "MRN-7011")

    assert mllp.exchange(news2_set("NEWS2-1", "MRN-7011"))["MSA"][1] == "AA"

    def scored() -> dict | None:
        """the patient service scored the reading"""
        return api.get(f"/api/v1/patient/{patient_id}").json()["risk"]

    risk = eventually(scored)
    assert (risk["news2_total"], risk["band"]) == (11, "high")


def test_a_loinc_coded_message_is_stored_too(api, mllp) -> None:
    patient_id = patient(api, "MRN-7002")

    assert mllp.exchange(loinc("L-1", "MRN-7002"))["MSA"][1] == "AA"

    [reading] = readings(api, patient_id)
    assert (reading["heart_rate_bpm"], reading["respiratory_rate_bpm"], reading["temperature_c"]) == (88, 21, 38.4)


def test_a_resent_message_is_acknowledged_and_stored_once(api, mllp) -> None:
    patient_id = patient(api, "MRN-7003")
    message = pcd01("CTRL-2", "MRN-7003")

    first, again = mllp.exchange(message), mllp.exchange(message)

    assert first["MSA"][1:3] == again["MSA"][1:3] == ["AA", "CTRL-2"]
    assert len(readings(api, patient_id)) == 1


def test_content_the_api_would_refuse_gets_ae_naming_the_field_and_nothing_is_stored(api, mllp) -> None:
    patient_id = patient(api, "MRN-7004")
    when = stamp(datetime.now(UTC))
    too_high = f"OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|140|262688^MDC_DIM_PERCENT^MDC|||||R|||{when}"
    no_offset = "OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||20261203101500"
    wrong_unit = f"OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|266016^MDC_DIM_MMHG^MDC|||||R|||{when}"

    refused = [mllp.exchange(pcd01(f"BAD-{n}", "MRN-7004", observations=[obx])) for n, obx in
               enumerate([too_high, no_offset, wrong_unit])]  # fmt: skip

    assert [ack["MSA"][1] for ack in refused] == ["AE", "AE", "AE"]
    assert [ack["ERR"][2] for ack in refused] == ["OBX^4^5", "OBX^4^14", "OBX^4^6"]
    assert "spo2_percent" in refused[0]["ERR"][8]
    assert readings(api, patient_id) == []


def test_what_is_never_accepted_gets_ar(mllp) -> None:
    merge = "MSH|^~\\&|PAS|HOSP|PAINKILLER|HOSP|20261203101500+0000||ADT^A40|ADT-1|P|2.5\rPID|||MRN-1^^^HOSP^MR\r"
    old = pcd01("OLD-1", "MRN-7005", version="2.2")

    answers = [mllp.exchange("this is not HL7"), mllp.exchange(merge), mllp.exchange(old)]

    assert [ack["MSA"][1] for ack in answers] == ["AR", "AR", "AR"]
    assert [ack["MSA"][2] for ack in answers] == ["", "ADT-1", "OLD-1"]


def test_a_message_for_an_unknown_mrn_is_held_and_recorded_once_the_patient_exists(api, mllp) -> None:
    assert mllp.exchange(pcd01("HELD-1", "MRN-7006"))["MSA"][1] == "AA"
    [held] = api.get("/api/v1/measures/hl7/held").json()["items"]
    assert (held["control_id"], held["mrn"], held["readings"][0]["spo2_percent"]) == ("HELD-1", "MRN-7006", 96)

    patient_id = patient(api, "MRN-7006")

    def recorded() -> list[dict]:
        """the held message's reading is recorded"""
        return readings(api, patient_id)

    [reading] = eventually(recorded, timeout_s=30)
    assert reading["spo2_percent"] == 96
    assert api.get("/api/v1/measures/hl7/held").json()["items"] == []
    assert mllp.exchange(pcd01("HELD-1", "MRN-7006"))["MSA"][1] == "AA"  # a resend changes nothing
    assert len(readings(api, patient_id)) == 1


def test_framing_several_messages_in_one_write_and_one_over_several(api, mllp) -> None:
    patient_id = patient(api, "MRN-7007")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    blocks = [frame(pcd01(f"F-{n}", "MRN-7007", at=base + timedelta(minutes=n))) for n in range(3)]

    mllp.send(b"noise before the start byte" + blocks[0] + blocks[1])
    mllp.send(blocks[2][:40])
    mllp.send(blocks[2][40:])

    assert [mllp.ack()["MSA"][2] for _ in range(3)] == ["F-0", "F-1", "F-2"]
    assert len(readings(api, patient_id)) == 3


def test_a_block_without_start_byte_gets_ar_and_the_connection_goes_on(mllp) -> None:
    mllp.send(pcd01("NOSTART", "MRN-7008").encode() + END)
    assert mllp.ack()["MSA"][1] == "AR"
    assert mllp.exchange(loinc("AFTER", "MRN-7008"))["MSA"][1:3] == ["AA", "AFTER"]


def test_a_block_over_the_size_cap_gets_ar_and_its_connection_closed(mllp) -> None:
    mllp.send(START + b"MSH|" + b"x" * (1_048_576 + 10))

    assert mllp.ack()["MSA"][1] == "AR"
    assert mllp.ack() == {}  # closed


def test_mllp_over_tls(api, stack) -> None:
    patient_id = patient(api, "MRN-7009")
    client = MllpClient(stack.hl7_tls_port, tls=True)
    try:
        assert client.exchange(loinc("TLS-1", "MRN-7009"))["MSA"][1] == "AA"
    finally:
        client.close()
    assert len(readings(api, patient_id)) == 1


def test_a_sender_outside_the_allow_list_is_disconnected_and_counted(stack) -> None:
    """Behind NGINX the listener takes the sender's address from the PROXY line; this one claims
    an address outside the allow-list (empty: this machine only)."""

    def refused() -> float:
        text = httpx.get(f"http://127.0.0.1:{stack.metrics_ports['measurement-hl7']}/metrics").text
        line = next(line for line in text.splitlines() if line.startswith("painkiller_hl7_refused_connections_total"))
        return float(line.split()[-1])

    before = refused()
    client = MllpClient(stack.hl7_listener_port)
    try:
        client.send(b"PROXY TCP4 10.9.9.9 127.0.0.1 40000 2575\r\n" + frame(loinc("OUTSIDE", "MRN-7010")))
        assert client.ack() == {}  # closed without an answer
    finally:
        client.close()
    assert refused() == before + 1


def test_an_admission_a_reading_a_transfer_and_a_discharge(api, mllp) -> None:
    """ADT A01, then ORU, then A02, then A03: the right patient, bed and readings."""

    def the_patient() -> dict:
        [found] = api.get("/api/v1/patient", params={"mrn": "MRN-7100"}).json()["items"]
        return found

    assert mllp.exchange(adt("A01", "ADT-1", "MRN-7100"))["MSA"][1:3] == ["AA", "ADT-1"]
    admitted = the_patient()
    assert (admitted["first_name"], admitted["last_name"], admitted["birth_date"], admitted["sex"]) == (
        "Ada", "Lovelace", "1960-12-10", "female"
    )  # fmt: skip
    assert admitted["location"] == {"ward": "4B", "room": "12", "bed": "2"}
    assert mllp.exchange(pcd01("ORU-1", "MRN-7100"))["MSA"][1] == "AA"
    assert len(readings(api, admitted["id"])) == 1  # recorded at once: not held

    assert mllp.exchange(adt("A02", "ADT-2", "MRN-7100", bed="5C^1^3"))["MSA"][1] == "AA"
    assert the_patient()["location"] == {"ward": "5C", "room": "1", "bed": "3"}
    on_5c = api.get("/api/v1/patient", params={"ward": "5C"}).json()["items"]
    assert [patient["id"] for patient in on_5c] == [admitted["id"]]
    assert api.get("/api/v1/patient", params={"ward": "4B"}).json()["items"] == []

    assert mllp.exchange(adt("A03", "ADT-3", "MRN-7100", discharged="20261203100000+0000"))["MSA"][1] == "AA"
    discharged = the_patient()
    assert (discharged["location"], discharged["discharged_at"]) == (None, "2026-12-03T10:00:00Z")
    assert mllp.exchange(adt("A02", "ADT-2", "MRN-7100", bed="5C^1^3"))["MSA"][1] == "AA"  # a resend
    assert the_patient()["location"] is None  # changes nothing
    assert len(readings(api, admitted["id"])) == 1


def test_adt_content_the_patient_service_refuses_gets_ae_naming_the_field(api, mllp) -> None:
    unknown = mllp.exchange(adt("A02", "ADT-9", "MRN-NOBODY"))
    no_birth_date = mllp.exchange(adt("A01", "ADT-10", "MRN-7101", born=""))

    assert (unknown["MSA"][1], unknown["ERR"][2]) == ("AE", "PID^1^3")
    assert (no_birth_date["MSA"][1], no_birth_date["ERR"][2]) == ("AE", "PID^1^7")
    assert api.get("/api/v1/patient", params={"mrn": "MRN-7101"}).json()["items"] == []


def certificate_authority(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA of the hospital's (its certificate file), for monitors' client certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def client_certificate(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, name: str) -> Path:
    """A monitor's certificate and key, in one PEM file, signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    path = directory / f"{name}.pem"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem + cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def certificates_required(stack, monkeypatch, tmp_path) -> Iterator[tuple[stack_module.Stack, Path, Path]]:
    """A second NGINX in front of the same listener that requires client certificates of the
    hospital's CA on its TLS port (HL7_TLS_VERIFY_CLIENT=on); a good and a foreign certificate."""
    tmp_path.chmod(0o755)
    ca_path, ca_key, ca = certificate_authority(tmp_path, "hospital-ca")
    _, other_key, other = certificate_authority(tmp_path, "other-ca")
    good, foreign = (
        client_certificate(tmp_path, ca_key, ca, "monitor"),
        client_certificate(tmp_path, other_key, other, "x"),
    )
    monkeypatch.setenv("HL7_TLS_CLIENT_CA", str(ca_path))
    monkeypatch.setenv("HL7_TLS_VERIFY_CLIENT", "on")
    run_dir = tmp_path / "nginx-run"
    run_dir.mkdir(mode=0o755)
    strict = dataclasses.replace(stack, run_dir=run_dir, nginx_port=free_port(), tls_port=free_port(),
                                 hl7_port=free_port(), hl7_tls_port=free_port())  # fmt: skip
    process = stack_module.start_nginx(strict)
    stack_module.wait_ready(strict.url + "/api/v1/patient/health/live", process=process)
    try:
        yield strict, good, foreign
    finally:
        stack_module.stop([process])


def test_mllp_over_tls_with_a_client_certificate_required(api, certificates_required) -> None:
    strict, good, foreign = certificates_required
    patient_id = patient(api, "MRN-7200")
    trusted = MllpClient(strict.hl7_tls_port, tls=True, certificate=good)
    try:
        assert trusted.exchange(loinc("CERT-1", "MRN-7200"))["MSA"][1] == "AA"
    finally:
        trusted.close()
    for certificate in (None, foreign):
        try:
            refused = MllpClient(strict.hl7_tls_port, tls=True, certificate=certificate)
            assert refused.exchange(loinc("CERT-2", "MRN-7200")) == {}  # the handshake or the connection fails
            refused.close()
        except (ssl.SSLError, ConnectionError):
            pass
    assert len(readings(api, patient_id)) == 1
