"""The early-warning loop through NGINX: readings in, NEWS2 band up, an event out, and back down."""

import json
from datetime import UTC, datetime, timedelta

import httpx
import pika
from harness import eventually, observer_url, vhost_of

from painkiller_common.contracts import EXCHANGE
from painkiller_common.events.topology import declare

# A patient deteriorating over an afternoon, then recovering (each a full NEWS2 set).
SERIES = [
    dict(respiratory_rate_bpm=16, spo2_percent=97, on_oxygen=False, systolic_mmhg=124, diastolic_mmhg=78,
         heart_rate_bpm=76, consciousness="alert", temperature_c=36.9),  # NEWS2 0
    dict(respiratory_rate_bpm=22, spo2_percent=95, on_oxygen=False, systolic_mmhg=108, diastolic_mmhg=70,
         heart_rate_bpm=104, consciousness="alert", temperature_c=38.3),  # 2+1+0+1+1+0+1 = 6
    dict(respiratory_rate_bpm=27, spo2_percent=91, on_oxygen=True, systolic_mmhg=92, diastolic_mmhg=58,
         heart_rate_bpm=128, consciousness="confusion", temperature_c=39.4),  # 3+3+2+2+2+3+2 = 17
]  # fmt: skip
RECOVERED = SERIES[0]


def test_a_deteriorating_patient_climbs_to_high_and_back(api: httpx.Client, stack) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(observer_url(vhost_of(stack))))
    channel = connection.channel()
    declare(channel)  # the workers may not have declared it yet
    watch = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(watch, EXCHANGE, routing_key="patient.risk_changed")
    try:
        patient = api.post("/api/v1/patient", json={"first_name": "Tom", "last_name": "Kent", "age": 67}).json()
        readings_url = f"/api/v1/patient/{patient['id']}/measurements"
        start = datetime.now(UTC) - timedelta(hours=3)

        def band() -> str | None:
            risk = api.get(f"/api/v1/patient/{patient['id']}").json()["risk"]
            return risk and risk["band"]

        for hour, vitals in enumerate(SERIES):
            measured_at = (start + timedelta(hours=hour)).isoformat()
            assert api.post(readings_url, json={**vitals, "measured_at": measured_at}).status_code == 201
            eventually(lambda expected=("low", "medium", "high")[hour]: band() == expected)

        assessment = api.get(f"/api/v1/patient/{patient['id']}/risk").json()
        assert (assessment["news2"]["total"], assessment["news2"]["complete"]) == (17, True)
        ward = api.get("/api/v1/patient/at-risk", params={"min_band": "medium"}).json()["items"]
        assert [(p["id"], p["band"]) for p in ward] == [(patient["id"], "high")]

        def risk_events() -> list[dict]:
            bodies = []
            while (message := channel.basic_get(watch, auto_ack=True))[0] is not None:
                bodies.append(json.loads(message[2]))
            return bodies

        seen: list[dict] = []
        eventually(lambda: seen.extend(risk_events()) or [e["payload"]["band"] for e in seen] == ["medium", "high"])
        assert all(e["payload"]["patient_id"] == patient["id"] for e in seen)

        measured_at = (start + timedelta(hours=3)).isoformat()
        assert api.post(readings_url, json={**RECOVERED, "measured_at": measured_at}).status_code == 201
        eventually(lambda: band() == "low")
        assert api.get("/api/v1/patient/at-risk", params={"min_band": "medium"}).json()["items"] == []
    finally:
        connection.close()
