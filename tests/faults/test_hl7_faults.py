"""HL7 v2 over MLLP when the database goes away mid-stream (doc/hl7.md): the sender gets AE, resends
once it is back, and gets AA; every reading is stored once."""

from datetime import UTC, datetime, timedelta

from faulty import Faulty
from harness import eventually

from painkiller_testing.hl7 import MllpClient, pcd01


def test_the_database_down_mid_stream_gives_ae_then_aa_on_the_resend_nothing_lost_or_doubled(faulty: Faulty) -> None:
    client = faulty.client
    created = client.post("/api/v1/patient", json={"mrn": "MRN-F1", "first_name": "A", "last_name": "B", "age": 60})
    patient_id = created.json()["id"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    messages = {f"F-{n}": pcd01(f"F-{n}", "MRN-F1", at=start + timedelta(minutes=n)) for n in range(15)}
    mllp = MllpClient(faulty.stack.hl7_port, timeout_s=30)
    try:
        first = [mllp.exchange(message)["MSA"][1] for message in list(messages.values())[:10]]
        faulty.hl7_db_proxy.down()
        during = [mllp.exchange(message)["MSA"][1] for message in list(messages.values())[10:]]
        faulty.hl7_db_proxy.up()

        def resent() -> list[str]:
            """every message resent once the database is back is acknowledged AA"""
            answers = [mllp.exchange(message)["MSA"][1] for message in messages.values()]
            return answers if set(answers) == {"AA"} else []

        eventually(resent, timeout_s=30, interval_s=1)
    finally:
        mllp.close()

    assert first == ["AA"] * 10
    assert during == ["AE"] * 5
    stored = client.get(f"/api/v1/patient/{patient_id}/measurements", params={"limit": 100}).json()["items"]
    assert sorted(reading["measured_at"] for reading in stored) == [
        (start + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ") for n in range(15)
    ]
