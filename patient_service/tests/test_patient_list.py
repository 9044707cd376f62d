from fastapi.testclient import TestClient

from painkiller_common.http.pagination import MAX_LIMIT


def all_pages(client: TestClient, **params: object) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/patient", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_pages_cover_every_patient_once_in_creation_order(client: TestClient, make_patient) -> None:
    created = [make_patient(first_name=f"P{i}")["id"] for i in range(7)]
    pages = all_pages(client, limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [p["id"] for page in pages for p in page] == created


def test_list_by_post_body_matches_get(client: TestClient, make_patient) -> None:
    for i in range(3):
        make_patient(first_name=f"P{i}")
    first = client.post("/api/v1/patient/list", json={"limit": 2}).json()
    assert first == client.get("/api/v1/patient", params={"limit": 2}).json()
    rest = client.post("/api/v1/patient/list", json={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None


def test_name_filter_is_case_insensitive_on_first_or_last_name(client: TestClient, make_patient) -> None:
    make_patient(first_name="Maria", last_name="Lopez")
    make_patient(first_name="John", last_name="Marsh")
    make_patient(first_name="Eve", last_name="Stone")
    names = {p["first_name"] for p in client.get("/api/v1/patient", params={"name": "MAR"}).json()["items"]}
    assert names == {"Maria", "John"}


def test_name_filter_treats_wildcards_literally(client: TestClient, make_patient) -> None:
    make_patient(first_name="Ann")
    assert client.get("/api/v1/patient", params={"name": "%"}).json()["items"] == []
    assert client.get("/api/v1/patient", params={"name": "_nn"}).json()["items"] == []


def test_mrn_filter(client: TestClient, make_patient) -> None:
    wanted = make_patient(mrn="A-1")
    make_patient(mrn="A-2")
    items = client.post("/api/v1/patient/list", json={"mrn": "A-1"}).json()["items"]
    assert [p["id"] for p in items] == [wanted["id"]]


def test_limit_above_maximum_is_clamped(client: TestClient, make_patient) -> None:
    for i in range(MAX_LIMIT + 1):
        make_patient(first_name=f"P{i}")
    response = client.get("/api/v1/patient", params={"limit": 10**9})
    assert response.status_code == 200
    assert len(response.json()["items"]) == MAX_LIMIT
    assert response.json()["next_cursor"] is not None


def test_bad_paging_parameters_are_422(client: TestClient) -> None:
    for params in ({"limit": 0}, {"limit": -1}, {"cursor": "bm90LWEtY3Vyc29y"}, {"cursor": "!!"}, {"sort": "name"}):
        response = client.get("/api/v1/patient", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
