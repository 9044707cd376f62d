"""The hospital's patient CSV: imported in one request, idempotent on MRN, rejects by line."""

from pathlib import Path

from fastapi.testclient import TestClient

SAMPLE = Path(__file__).resolve().parents[2] / "doc" / "patients.csv"
HEADER = "patient_id,first_name,last_name,age,condition\n"


def post_csv(client: TestClient, text: str | bytes):
    content = text.encode() if isinstance(text, str) else text
    return client.post("/api/v1/patient/import", content=content, headers={"content-type": "text/csv"})


def test_the_sample_file_imports_and_a_second_import_changes_nothing(client: TestClient, stored, outbox) -> None:
    lines = SAMPLE.read_text().count("\n") - 1
    first = post_csv(client, SAMPLE.read_bytes()).json()
    assert (first["created"], first["updated"], first["rejected"]) == (lines, 0, [])
    again = post_csv(client, SAMPLE.read_bytes()).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, lines)
    assert stored("patients") == lines
    assert len(outbox()) == lines
    margaret = client.get("/api/v1/patient", params={"mrn": "H-100231"}).json()["items"][0]
    assert (margaret["first_name"], margaret["age"], margaret["conditions"]) == ("Margaret", 78, ["COPD"])
    sofia = client.get("/api/v1/patient", params={"mrn": "H-100235"}).json()["items"][0]
    assert sofia["conditions"] == []


def test_a_known_mrn_is_updated_and_its_condition_added(client: TestClient, make_patient) -> None:
    patient = make_patient(mrn="H-1", conditions=["asthma"])
    report = post_csv(client, HEADER + "H-1,Ada,King,37,COPD\nH-2,New,Person,50,\n").json()
    assert (report["created"], report["updated"]) == (1, 1)
    updated = client.get(f"/api/v1/patient/{patient['id']}").json()
    assert (updated["last_name"], updated["age"], updated["conditions"]) == ("King", 37, ["asthma", "COPD"])


def test_bad_lines_are_reported_by_line_number_and_the_rest_imported(client: TestClient, stored) -> None:
    text = HEADER + "\n".join(
        [
            "H-1,Ann,Lee,40,",  # line 2: fine
            "H-2,Bob,,40,",  # line 3: no last name
            "H-3,Cy,Dee,abc,",  # line 4: age not a number
            "H-4,Di,Eve,151,",  # line 5: age out of range
            ",Ed,Fox,30,",  # line 6: no patient_id
            "H-1,Ann,Lee,41,",  # line 7: repeated MRN
            "H-7,Too,Many,30,x,y",  # line 8: wrong number of fields
            "H-8,Gil,Hart,30,Asthma",  # line 9: fine
            "H-9,Ivy,Jay,²,",  # line 10: a digit to str.isdigit(), not a number
        ]
    )
    report = post_csv(client, text + "\n").json()
    assert report["created"] == 2
    assert [(r["line"], r["errors"][0]["field"]) for r in report["rejected"]] == [
        (3, "3.last_name"),
        (4, "4.age"),
        (5, "5.age"),
        (6, "6.patient_id"),
        (7, "7.patient_id"),
        (8, "8.row"),
        (10, "10.age"),
    ]
    assert stored("patients") == 2


def test_a_file_without_the_expected_header_is_422(client: TestClient, stored) -> None:
    response = post_csv(client, "id,name\n1,Ann\n")
    assert response.status_code == 422
    assert "patient_id,first_name,last_name,age,condition" in response.json()["errors"][0]["message"]
    assert post_csv(client, b"\xff\xfe\x00bad").status_code == 422
    assert stored("patients") == 0


def test_thousands_of_lines_in_one_request(client: TestClient, stored) -> None:
    text = HEADER + "".join(f"M-{i},First{i},Last{i},{i % 100},Cond{i % 7}\n" for i in range(3000))
    report = post_csv(client, text).json()
    assert (report["created"], report["rejected"]) == (3000, [])
    assert stored("patients") == 3000


def test_csv_must_be_sent_as_text_csv(client: TestClient) -> None:
    response = client.post("/api/v1/patient/import", json={"patient_id": "x"})
    assert response.status_code == 415
