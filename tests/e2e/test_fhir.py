"""FHIR R4 through NGINX (doc/fhir.md): the CapabilityStatement, Patients and vital-signs
Observations read, searched and created, `$lastn`, scopes, and OperationOutcome errors. Every
resource that comes back is validated with the `fhir.resources` R4B models; a real FHIR client
(fhirpy) searches and follows `next` links.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirpy import SyncFHIRClient
from harness import bearer, eventually
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FHIR_JSON = "application/fhir+json"
MRN_SYSTEM = "https://hospital.example/fhir/sid/mrn"
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
NOW = datetime.now(UTC).replace(microsecond=0)


def valid(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    """The body, after checking status, media type, and that it is a valid R4B resource."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def issue(response: httpx.Response, status: int) -> dict[str, Any]:
    """The one issue of an OperationOutcome answered with `status`."""
    body = valid(response, status)
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


def fhir_patient(last: str, *, mrn: str | None = None, born: str | None = "1941-12-09") -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": last, "given": ["Grace"]}]}
    patient |= {"gender": "female", **({"birthDate": born} if born else {})}
    return patient | ({"identifier": [{"system": MRN_SYSTEM, "value": mrn}]} if mrn else {})


def heart_rate(patient_id: str, value: float, at: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": at.isoformat(),
        "valueQuantity": {"value": value, "unit": "/min", "system": UCUM, "code": "/min"},
    }


def blood_pressure(patient_id: str, systolic: int, diastolic: int, at: datetime) -> dict[str, Any]:
    def component(code: str, value: int) -> dict[str, Any]:
        quantity = {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
        return {"code": {"coding": [{"system": LOINC, "code": code}]}, "valueQuantity": quantity}

    observation = heart_rate(patient_id, 0, at)
    del observation["valueQuantity"]
    observation["code"] = {"coding": [{"system": LOINC, "code": "85354-9"}]}
    return observation | {"component": [component("8480-6", systolic), component("8462-4", diastolic)]}


def post(api: httpx.Client, path: str, resource: dict[str, Any], **headers: str) -> httpx.Response:
    return api.post(path, json=resource, headers={"content-type": FHIR_JSON, **headers})


def new_patient(api: httpx.Client, last: str = "Hopper", **fields: Any) -> str:
    return str(valid(post(api, "/fhir/Patient", fhir_patient(last, **fields)), 201)["id"])


def codes(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["code"]["coding"][0]["code"] for entry in bundle.get("entry", [])]


def test_the_capability_statement_lists_what_is_served(stack) -> None:
    statement = valid(httpx.get(f"{stack.url}/fhir/metadata"))  # public: clients read it first
    assert statement["resourceType"] == "CapabilityStatement" and statement["kind"] == "instance"
    [rest] = statement["rest"]
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == {"Patient", "Observation"}
    for resource in resources.values():
        assert {i["code"] for i in resource["interaction"]} == {"read", "search-type", "create"}
    assert {p["name"] for p in resources["Patient"]["searchParam"]} == {"identifier", "name", "birthdate"}
    assert {p["name"] for p in resources["Observation"]["searchParam"]} == {
        "patient", "subject", "category", "code", "date", "_sort"
    }  # fmt: skip
    assert [op["name"] for op in resources["Observation"]["operation"]] == ["lastn"]
    assert rest["interaction"] == [{"code": "transaction"}]


def test_a_patient_created_in_fhir_reads_back_in_both_forms(api: httpx.Client) -> None:
    response = post(api, "/fhir/Patient", fhir_patient("Hopper", mrn="MRN-4711"))
    created = valid(response, 201)
    assert response.headers["location"].endswith(f"/fhir/Patient/{created['id']}/_history/1")
    read = valid(api.get(f"/fhir/Patient/{created['id']}"))
    assert read == created
    assert read["meta"]["versionId"] == "1" and read["meta"]["lastUpdated"]
    [identifier] = read["identifier"]
    assert (identifier["system"], identifier["value"], identifier["type"]["coding"][0]["code"]) == (
        MRN_SYSTEM, "MRN-4711", "MR"
    )  # fmt: skip
    own = api.get(f"/api/v1/patient/{created['id']}").json()
    assert (own["first_name"], own["last_name"], own["mrn"], own["sex"], own["birth_date"]) == (
        "Grace", "Hopper", "MRN-4711", "female", "1941-12-09"
    )  # fmt: skip

    # Only an age is known: an extension carries it, and there is no birthDate.
    by_age = api.post("/api/v1/patient", json={"first_name": "Ada", "last_name": "Lovelace", "age": 36}).json()
    ada = valid(api.get(f"/fhir/Patient/{by_age['id']}"))
    assert "birthDate" not in ada
    assert ada["extension"][0]["valueAge"] == {"value": 36, "unit": "a", "system": UCUM, "code": "a"}
    api.patch(f"/api/v1/patient/{by_age['id']}", json={"last_name": "King"})
    assert valid(api.get(f"/fhir/Patient/{by_age['id']}"))["meta"]["versionId"] == "2"


def test_a_fhir_client_searches_patients_and_follows_next_links(stack, api: httpx.Client) -> None:
    ids = [new_patient(api, f"Searchable{i}", mrn=f"MRN-S{i}", born=f"19{50 + i}-03-01") for i in range(5)]
    client = SyncFHIRClient(f"{stack.url}/fhir", authorization=api.headers["Authorization"])

    every = client.resources("Patient").search(name="searchable").limit(2).fetch_all()
    assert [p.id for p in every] == ids  # three pages, registration order, each once
    assert [p.id for p in client.resources("Patient").search(identifier=f"{MRN_SYSTEM}|MRN-S3").fetch()] == [ids[3]]
    assert [p.id for p in client.resources("Patient").search(identifier="MRN-S1").fetch()] == [ids[1]]
    assert client.resources("Patient").search(identifier="https://other.example|MRN-S1").fetch() == []
    born = client.resources("Patient").search(birthdate__ge="1952-01-01", birthdate__lt="1954").fetch_all()
    assert [p.id for p in born] == ids[2:4]
    assert [p.id for p in client.resources("Patient").search(birthdate="1951").fetch()] == [ids[1]]


def test_a_reading_in_painkiller_json_reads_back_as_vital_signs_observations(api: httpx.Client) -> None:
    patient = new_patient(api)
    reading = {"heart_rate_bpm": 88, "spo2_percent": 94, "temperature_c": 38.4, "systolic_mmhg": 128,
               "diastolic_mmhg": 79, "respiratory_rate_bpm": 16, "measured_at": NOW.isoformat()}  # fmt: skip
    stored = api.post(f"/api/v1/patient/{patient}/measurements", json=reading).json()

    bundle = valid(api.get("/fhir/Observation", params={"patient": patient}))
    assert bundle["type"] == "searchset"
    assert sorted(codes(bundle)) == sorted(["8867-4", "59408-5", "8310-5", "85354-9", "9279-1"])
    by_code = {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in bundle["entry"]}
    temperature = by_code["8310-5"]
    assert temperature["valueQuantity"] == {"value": 38.4, "unit": "Cel", "system": UCUM, "code": "Cel"}
    assert temperature["interpretation"][0]["coding"][0]["code"] == "H"  # above 38.0
    assert by_code["8867-4"]["interpretation"][0]["coding"][0]["code"] == "N"
    assert {c["code"] for c in by_code["59408-5"]["code"]["coding"]} == {"59408-5", "2708-6"}
    assert by_code["59408-5"]["valueQuantity"]["code"] == "%"
    panel = by_code["85354-9"]
    assert "valueQuantity" not in panel
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
            for c in panel["component"]] == [("8480-6", 128, "mm[Hg]"), ("8462-4", 79, "mm[Hg]")]  # fmt: skip
    for resource in by_code.values():
        assert resource["subject"] == {"reference": f"Patient/{patient}"}
        assert resource["category"][0]["coding"][0]["code"] == "vital-signs"
        assert datetime.fromisoformat(resource["effectiveDateTime"]) == NOW
        assert resource["id"].startswith(stored["id"])  # stable: the reading's id and the vital
        assert valid(api.get(f"/fhir/Observation/{resource['id']}")) == resource
    assert api.get(f"/fhir/Observation/{stored['id']}-body-weight").status_code == 404  # not in this reading


def test_an_observation_posted_in_fhir_is_a_reading_with_its_events(api: httpx.Client) -> None:
    patient = new_patient(api)
    response = post(api, "/fhir/Observation", heart_rate(patient, 131, NOW - timedelta(minutes=5)))
    created = valid(response, 201)
    assert response.headers["location"].endswith(f"/fhir/Observation/{created['id']}")
    assert created["valueQuantity"]["value"] == 131 and created["interpretation"][0]["coding"][0]["code"] == "H"

    [reading] = api.get(f"/api/v1/patient/{patient}/measurements").json()["items"]
    assert reading["heart_rate_bpm"] == 131 and created["id"] == f"{reading['id']}-heart-rate"
    latest = eventually(lambda: api.get(f"/api/v1/patient/{patient}").json()["latest_vitals"] or None)
    assert latest["heart_rate_bpm"]["value"] == 131
    risk = eventually(lambda: api.get(f"/api/v1/patient/{patient}").json()["risk"])
    assert risk["news2_total"] is not None and risk["news2_total"] >= 3  # a pulse of 131 scores 3

    # A transaction Bundle: the Observations of one measurement are one reading.
    at = NOW - timedelta(minutes=1)
    entries = [{"request": {"method": "POST", "url": "Observation"}, "resource": resource}
               for resource in (blood_pressure(patient, 142, 91, at), heart_rate(patient, 97, at))]  # fmt: skip
    answer = valid(post(api, "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": entries}))
    assert answer["type"] == "transaction-response"
    locations = [entry["response"]["location"] for entry in answer["entry"]]
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created", "201 Created"]
    newest = api.get(f"/api/v1/patient/{patient}/measurements").json()["items"][0]
    assert (newest["systolic_mmhg"], newest["diastolic_mmhg"], newest["heart_rate_bpm"]) == (142, 91, 97)
    assert locations == [f"Observation/{newest['id']}-blood-pressure", f"Observation/{newest['id']}-heart-rate"]


def test_links_never_follow_a_client_written_forwarded_host(stack, api: httpx.Client) -> None:
    """Straight to the service, as an Ingress would: a client's X-Forwarded-Host must not point the
    `next` links or the `Location` of its answer at another host."""
    new_patient(api, "Linked")
    new_patient(api, "Linked")
    direct = f"http://127.0.0.1:{stack.patient_port}"
    forged = {**api.headers, "X-Forwarded-Host": "evil.example", "content-type": FHIR_JSON}
    page = httpx.get(f"{direct}/fhir/Patient", params={"_count": "1"}, headers=forged, timeout=10).json()
    created = httpx.post(f"{direct}/fhir/Patient", json=fhir_patient("Forged"), headers=forged, timeout=10)
    assert created.status_code == 201
    links = [link["url"] for link in page["link"]] + [created.headers["location"]]
    assert not [url for url in links if "evil.example" in url], links
    assert all(url.startswith(direct) for url in links), links


def test_a_bundle_of_more_than_100_entries_is_413_before_any_is_validated(api: httpx.Client) -> None:
    """Validating a Bundle's entries is what costs (about half a second per megabyte); a reading
    is a handful of Observations, so more than 100 entries are refused unread."""
    patient = new_patient(api)
    entry = {"request": {"method": "POST", "url": "Observation"}, "resource": heart_rate(patient, 70, NOW)}
    too_many = {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 101}
    outcome = issue(post(api, "/fhir", too_many), 413)
    assert outcome["code"] == "too-long" and "Bundle.entry" in outcome["diagnostics"]
    assert api.get(f"/api/v1/patient/{patient}/measurements").json()["items"] == []
    # 100 of the same Observation are validated, and refused as one reading cannot hold them.
    assert issue(post(api, "/fhir", {**too_many, "entry": [entry] * 100}), 422)["code"] == "processing"


def test_an_observation_is_stored_once_with_an_idempotency_key_or_if_none_exist(api: httpx.Client) -> None:
    patient = new_patient(api)
    observation = heart_rate(patient, 77, NOW)
    first = valid(post(api, "/fhir/Observation", observation, **{"Idempotency-Key": "fhir-once-1"}), 201)
    again = post(api, "/fhir/Observation", observation, **{"Idempotency-Key": "fhir-once-1"})
    assert valid(again, 201) == first and again.headers["idempotent-replayed"] == "true"
    # The same key and values for another patient: that patient's own reading, not the first replayed.
    other = new_patient(api, "Other")
    theirs = valid(
        post(api, "/fhir/Observation", heart_rate(other, 77, NOW), **{"Idempotency-Key": "fhir-once-1"}), 201
    )
    assert theirs["subject"] == {"reference": f"Patient/{other}"} and theirs["id"] != first["id"]

    def if_none_exist(**params: str) -> dict[str, str]:
        return {"If-None-Exist": urlencode({"patient": patient, **params})}

    matched = post(api, "/fhir/Observation", observation, **if_none_exist(code="8867-4", date=NOW.isoformat()))
    assert valid(matched, 200) == first  # it exists: nothing is created
    earlier = NOW - timedelta(minutes=1)
    created = post(
        api, "/fhir/Observation", heart_rate(patient, 78, earlier), **if_none_exist(date=earlier.isoformat())
    )
    assert valid(created, 201)["valueQuantity"]["value"] == 78
    several = post(api, "/fhir/Observation", heart_rate(patient, 79, NOW), **if_none_exist(code="8867-4"))
    assert issue(several, 412)["code"] == "multiple-matches"
    unknown = post(api, "/fhir/Observation", observation, **{"If-None-Exist": "colour=blue"})
    assert issue(unknown, 400)["code"] == "invalid"
    assert len(api.get(f"/api/v1/patient/{patient}/measurements").json()["items"]) == 2


def test_lastn_gives_the_newest_of_each_vital_after_readings_arrive_out_of_order(api: httpx.Client) -> None:
    patient = new_patient(api)
    readings_url = f"/api/v1/patient/{patient}/measurements"
    newer, older = NOW - timedelta(minutes=10), NOW - timedelta(hours=2)
    api.post(readings_url, json={"heart_rate_bpm": 101, "systolic_mmhg": 150, "diastolic_mmhg": 95,
                                 "measured_at": newer.isoformat()})  # fmt: skip
    api.post(readings_url, json={"heart_rate_bpm": 60, "temperature_c": 36.6, "systolic_mmhg": 120,
                                 "diastolic_mmhg": 80, "measured_at": older.isoformat()})  # fmt: skip
    params = {"patient": patient, "category": "vital-signs", "max": "1"}

    def lastn() -> dict[str, Any] | None:
        bundle = valid(api.get("/fhir/Observation/$lastn", params=params))
        return bundle if sorted(codes(bundle)) == ["8310-5", "85354-9", "8867-4"] else None

    bundle = eventually(lastn)
    by_code = {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in bundle["entry"]}
    assert by_code["8867-4"]["valueQuantity"]["value"] == 101
    assert datetime.fromisoformat(by_code["8867-4"]["effectiveDateTime"]) == newer
    assert [c["valueQuantity"]["value"] for c in by_code["85354-9"]["component"]] == [150, 95]
    assert datetime.fromisoformat(by_code["8310-5"]["effectiveDateTime"]) == older  # only the older one has it
    only_pulse = valid(api.get("/fhir/Observation/$lastn", params={**params, "code": f"{LOINC}|8867-4"}))
    assert codes(only_pulse) == ["8867-4"]
    assert issue(api.get("/fhir/Observation/$lastn", params={**params, "max": "3"}), 400)["code"] == "invalid"
    assert issue(api.get("/fhir/Observation/$lastn", params={"max": "1"}), 400)["code"] == "invalid"


def test_observations_are_searched_by_code_and_date_and_paged_newest_first(stack, api: httpx.Client) -> None:
    patient, other = new_patient(api), new_patient(api, "Other")
    times = [NOW - timedelta(hours=hours) for hours in range(6)]
    for at in times:  # six readings of two vitals: twelve Observations
        api.post(f"/api/v1/patient/{patient}/measurements",
                 json={"heart_rate_bpm": 70, "respiratory_rate_bpm": 14, "measured_at": at.isoformat()})  # fmt: skip
    api.post(f"/api/v1/patient/{other}/measurements", json={"heart_rate_bpm": 90, "measured_at": NOW.isoformat()})

    client = SyncFHIRClient(f"{stack.url}/fhir", authorization=api.headers["Authorization"])
    paged = client.resources("Observation").search(patient=patient).sort("-date").limit(5).fetch_all()
    assert len(paged) == 12 and len({o.id for o in paged}) == 12  # pages split a reading, nothing lost or repeated
    when = [datetime.fromisoformat(o.effectiveDateTime) for o in paged]
    assert when == sorted(when, reverse=True)

    pulses = client.resources("Observation").search(subject=f"Patient/{patient}", code=f"{LOINC}|8867-4").fetch_all()
    assert [datetime.fromisoformat(o.effectiveDateTime) for o in pulses] == times
    window = {"patient": patient, "code": "8867-4", "date": [f"ge{times[3].isoformat()}", f"lt{times[1].isoformat()}"]}
    found = valid(api.get("/fhir/Observation", params=window))
    assert [datetime.fromisoformat(e["resource"]["effectiveDateTime"]) for e in found["entry"]] == times[2:4]
    assert codes(valid(api.get("/fhir/Observation", params={"patient": patient, "category": "laboratory"}))) == []
    everyone = valid(api.get("/fhir/Observation", params={"code": "8867-4", "_count": "200"}))
    assert len(everyone["entry"]) == 7


def test_unknown_parameters_are_ignored_or_refused_as_asked(api: httpx.Client) -> None:
    patient = new_patient(api)
    lenient = valid(api.get("/fhir/Observation", params={"patient": patient, "colour": "blue"}))
    [self_link] = [link["url"] for link in lenient["link"] if link["relation"] == "self"]
    assert "colour" not in self_link and f"patient={patient}" in self_link
    [outcome] = [e["resource"] for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome["issue"][0]["diagnostics"] == "Ignored unknown search parameters: colour."
    strict = api.get("/fhir/Patient", params={"colour": "blue"}, headers={"Prefer": "handling=strict"})
    assert "colour" in issue(strict, 400)["diagnostics"]


def test_errors_are_operation_outcomes_with_the_right_status(stack, api: httpx.Client) -> None:
    patient = new_patient(api)
    assert issue(api.get(f"/fhir/Patient/{uuid.uuid4()}"), 404)["code"] == "not-found"
    assert issue(api.get("/fhir/Patient/not-an-id"), 404)["code"] == "not-found"
    assert issue(api.get(f"/fhir/Observation/{uuid.uuid4()}-heart-rate"), 404)["code"] == "not-found"
    assert issue(httpx.get(f"{stack.url}/fhir/Patient/{patient}"), 401)["code"] == "login"
    assert issue(post(api, "/fhir/Observation", {"resourceType": "Patient"}), 400)["code"] == "invalid"
    broken = api.post("/fhir/Patient", content=b"{not json", headers={"content-type": FHIR_JSON})
    assert issue(broken, 400)["code"] == "invalid"
    malformed = post(api, "/fhir/Patient", {"resourceType": "Patient", "name": "Grace"})
    assert issue(malformed, 400)["expression"] == ["Patient.name"]
    too_fast = post(api, "/fhir/Observation", heart_rate(patient, 918, NOW))
    assert issue(too_fast, 422)["expression"] == ["Observation.valueQuantity.value"]
    in_fahrenheit = heart_rate(patient, 98, NOW) | {"code": {"coding": [{"system": LOINC, "code": "8310-5"}]}}
    in_fahrenheit["valueQuantity"] |= {"unit": "degF", "code": "[degF]"}
    assert issue(post(api, "/fhir/Observation", in_fahrenheit), 422)["expression"] == ["Observation.valueQuantity.code"]
    reversed_panel = blood_pressure(patient, 128, 79, NOW)
    reversed_panel["component"].reverse()  # diastolic first: the error names the component sent
    reversed_panel["component"][1]["valueQuantity"]["code"] = "kPa"
    assert issue(post(api, "/fhir/Observation", reversed_panel), 422)["expression"] == [
        "Observation.component[1].valueQuantity.code"
    ]
    no_age = post(api, "/fhir/Patient", fhir_patient("Nobody", born=None))
    assert issue(no_age, 422)["expression"] == ["Patient.extension"]
    assert issue(api.get("/fhir/Observation", params={"date": "ne2026-01-01"}), 400)["code"] == "invalid"
    assert issue(api.get("/fhir/Observation", params={"_sort": "date"}), 400)["code"] == "invalid"
    assert issue(api.get("/fhir/Patient", params={"_count": "²"}), 400)["code"] == "invalid"  # a digit, not 0-9
    # An Observation page's cursor (it counts the reading's Observations served) given to Patient.
    odd_cursor = {"_cursor": "1764201600000000.0b9f7a8c2d3e4f5061728394a5b6c7d8.3"}
    assert valid(api.get("/fhir/Patient", params=odd_cursor))["type"] == "searchset"
    assert issue(post(api, "/fhir/Observation", heart_rate(str(uuid.uuid4()), 80, NOW)), 404)["code"] == "not-found"
    assert api.get(f"/api/v1/patient/{patient}/measurements").json()["items"] == []  # nothing stored

    api.delete(f"/api/v1/patient/{patient}")
    assert issue(api.get(f"/fhir/Patient/{patient}"), 410)["code"] == "deleted"


def test_scopes_and_the_patient_context_hold_on_the_fhir_routes(stack, api: httpx.Client) -> None:
    mine, theirs = new_patient(api, "Mine"), new_patient(api, "Theirs")
    for patient in (mine, theirs):
        api.post(f"/api/v1/patient/{patient}/measurements", json={"heart_rate_bpm": 80})
    headers = bearer(stack, scope="patient/Patient.rs patient/Observation.crs", patient=mine)
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as app:
        assert valid(app.get(f"/fhir/Patient/{mine}"))["id"] == mine
        assert issue(app.get(f"/fhir/Patient/{theirs}"), 404)["code"] == "not-found"
        assert [e["resource"]["id"] for e in valid(app.get("/fhir/Patient"))["entry"]] == [mine]
        own = valid(app.get("/fhir/Observation"))["entry"]
        assert {e["resource"]["subject"]["reference"] for e in own} == {f"Patient/{mine}"}
        assert valid(app.get("/fhir/Observation", params={"patient": theirs})).get("entry", []) == []
        assert issue(app.get("/fhir/Observation/$lastn", params={"patient": theirs}), 404)["code"] == "not-found"
        assert issue(post(app, "/fhir/Observation", heart_rate(theirs, 80, NOW)), 404)["code"] == "not-found"
        assert valid(post(app, "/fhir/Observation", heart_rate(mine, 81, NOW)), 201)["valueQuantity"]["value"] == 81
        assert issue(post(app, "/fhir/Patient", fhir_patient("New")), 403)["code"] == "forbidden"
    with httpx.Client(base_url=stack.url, headers=bearer(stack, scope="user/Patient.rs"), timeout=10) as reader:
        assert issue(reader.get("/fhir/Observation"), 403)["code"] == "forbidden"
        assert issue(post(reader, "/fhir/Patient", fhir_patient("X")), 403)["code"] == "forbidden"


def test_a_conditional_create_is_a_search_of_the_posted_subject_only(stack, api: httpx.Client) -> None:
    """`If-None-Exist` runs a search: without the search permission it is refused, it may look at
    the posted Observation's own subject only, and the audit trail records it as the search it is.
    A create-only token could otherwise learn other patients' readings, or that they exist (412)."""
    mine, theirs = new_patient(api, "Mine"), new_patient(api, "Theirs")
    for patient in (mine, theirs):
        api.post(f"/api/v1/patient/{patient}/measurements", json={"heart_rate_bpm": 90, "measured_at": NOW.isoformat()})
    earlier = NOW - timedelta(minutes=5)
    probe = {"If-None-Exist": urlencode({"patient": theirs, "code": "8867-4"})}
    create_only = bearer(stack, scope="user/Observation.c", subject="create-only")
    with httpx.Client(base_url=stack.url, headers=create_only, timeout=10) as creator:
        assert (
            issue(post(creator, "/fhir/Observation", heart_rate(mine, 71, earlier), **probe), 403)["code"]
            == "forbidden"
        )
        own = {"If-None-Exist": urlencode({"patient": mine, "code": "8867-4"})}
        assert (
            issue(post(creator, "/fhir/Observation", heart_rate(mine, 71, earlier), **own), 403)["code"] == "forbidden"
        )
    searcher = bearer(stack, scope="user/Observation.cs", subject="searcher")
    with httpx.Client(base_url=stack.url, headers=searcher, timeout=10) as client:
        assert (
            issue(post(client, "/fhir/Observation", heart_rate(mine, 72, earlier), **probe), 400)["code"] == "invalid"
        )
        same = {"If-None-Exist": urlencode({"patient": mine, "code": "8867-4", "date": NOW.isoformat()})}
        assert (
            valid(post(client, "/fhir/Observation", heart_rate(mine, 90, NOW), **same))["valueQuantity"]["value"] == 90
        )
        # No patient named: the condition is about the posted subject, never about everyone's.
        any_90 = {"If-None-Exist": urlencode({"code": "8867-4", "date": NOW.isoformat()})}
        assert valid(post(client, "/fhir/Observation", heart_rate(mine, 90, NOW), **any_90))["subject"] == {
            "reference": f"Patient/{mine}"
        }
    for patient in (mine, theirs):  # nothing was created by any of it
        assert len(api.get(f"/api/v1/patient/{patient}/measurements").json()["items"]) == 1
    rows = api.get("/api/v1/measures/audit", params={"patient_id": mine}).json()["items"]
    assert {(r["actor"], r["action"], r["status"]) for r in rows if r["actor"] == "searcher"} == {
        ("searcher", "search", 200)
    }
    assert [r for r in api.get("/api/v1/measures/audit", params={"patient_id": theirs}).json()["items"]
            if r["actor"] in ("searcher", "create-only") and r["status"] == 200] == []  # fmt: skip


@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir/Observation", "/fhir/Observation/$lastn", "/fhir"])
def test_a_method_a_fhir_route_lacks_is_an_operation_outcome(api: httpx.Client, path: str) -> None:
    assert issue(api.put(path, json={}), 405)["code"] == "not-supported"


SEARCH_NAMES = ["patient", "subject", "code", "date", "category", "_count", "_cursor", "_sort", "_format", "max",
                "identifier", "name", "birthdate", "name:exact", "colour", ""]  # fmt: skip
NASTY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "ge9999-12-31",
            "lt0001-01-01T00:00:00Z",
            "2026-13",
            "eq2026-11-27T25:00:00Z",
            "0",
            "-1",
            "99999999999999999999",
            "1764201600000000.0b9f7a8c2d3e4f5061728394a5b6c7d8.99",
            "Patient/",
            "http://loinc.org|",
            "|",
            ",,,",
            "a\x00b",
            "%00",
            "x" * 2000,
        ]
    ),  # fmt: skip
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/fhir/Patient", "/fhir/Observation", "/fhir/Observation/$lastn"]),
       params=st.lists(st.tuples(st.sampled_from(SEARCH_NAMES), NASTY), max_size=4),
       strict=st.booleans())  # fmt: skip
def test_no_search_is_answered_with_a_server_error(
    api: httpx.Client, path: str, params: list[tuple[str, str]], strict: bool
) -> None:
    response = api.get(path, params=params, headers={"Prefer": "handling=strict"} if strict else {})
    assert response.status_code < 500 or response.status_code == 414, response.text  # 414: NGINX, URL too long
    if response.status_code != 414:
        valid(response, response.status_code)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # nested deeper than any parser should follow
        b'{"resourceType": "Observation", "status": "final", "code": {"coding": "8867-4"}}',
        b'{"resourceType": "Observation", "status": "final", "code": {}, "valueQuantity": {"value": 1e400}}',
        b'{"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org",'
        b' "code": "8867-4"}]}, "subject": {"reference": "Patient/x"}, "effectiveDateTime": "2026"}',
        b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}}]}',
        b'{"resourceType": "Patient", "name": [{"family": "A\\u0000B", "given": ["C"]}], "birthDate": "1941"}',
        b'{"resourceType": "Patient", "name": [{"family": "A", "given": ["C"]}], "birthDate": "0001-01-01"}',
        b'"Patient"',
    ],
)
def test_no_body_is_answered_with_a_server_error(api: httpx.Client, body: bytes) -> None:
    for path in ("/fhir/Patient", "/fhir/Observation", "/fhir"):
        response = api.post(path, content=body, headers={"content-type": FHIR_JSON})
        assert 400 <= response.status_code < 500, (path, response.text)
        valid(response, response.status_code)
