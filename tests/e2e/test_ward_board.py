"""The ward board and the observation chart in Debian's headless Chromium, through NGINX, as a nurse
uses them (doc/ward.md): the board's order, a reading re-sorting it live, the overdue flag, the
chart of 72 hours, the keyboard, a tablet's screen, and a patient's token kept to its own chart.

Screenshots go to $WARD_SCREENSHOTS when set (doc/ward.md's come from there), else to the test's
temporary directory."""

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from harness import bearer, eventually
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from ward_pages import board, rows

NORMAL = dict(respiratory_rate_bpm=16, spo2_percent=97, on_oxygen=False, systolic_mmhg=120, diastolic_mmhg=75,
              heart_rate_bpm=72, consciousness="alert", temperature_c=36.8)  # fmt: skip  # NEWS2 0
SETS = {
    "critical": dict(respiratory_rate_bpm=26, spo2_percent=91, on_oxygen=True, systolic_mmhg=95, diastolic_mmhg=60,
                     heart_rate_bpm=125, consciousness="voice", temperature_c=39.2),  # 17, high
    "medium": {**NORMAL, "respiratory_rate_bpm": 22, "spo2_percent": 95, "systolic_mmhg": 108, "heart_rate_bpm": 104,
               "temperature_c": 38.3},  # 2+1+1+1+1 = 6, medium
    "single_three": {**NORMAL, "consciousness": "voice"},  # 3 in one parameter: low-medium
    "low": {**NORMAL, "respiratory_rate_bpm": 22, "spo2_percent": 95, "heart_rate_bpm": 95},  # 2+1+1 = 4, low
    "normal": NORMAL,
}  # fmt: skip
BAND = {"critical": "high", "medium": "medium", "single_three": "low_medium", "low": "low", "normal": "low"}


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("WARD_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def token_of(stack, **claims: object) -> str:
    return bearer(stack, **claims)["Authorization"].removeprefix("Bearer ")


def admit(api: httpx.Client, ward: str, bed: str, name: str) -> str:
    where = {"ward": ward, "room": "1", "bed": bed}
    body = {"first_name": name, "last_name": "Nightingale", "age": 70, "location": where}
    return api.post("/api/v1/patient", json=body).json()["id"]


def observe(api: httpx.Client, patient: str, vitals: dict, ago: timedelta) -> None:
    measured_at = (datetime.now(UTC) - ago).isoformat()
    response = api.post(f"/api/v1/patient/{patient}/measurements", json={**vitals, "measured_at": measured_at})
    assert response.status_code == 201, response.text


def scored(api: httpx.Client, patient: str, band: str) -> None:
    eventually(lambda: (api.get(f"/api/v1/patient/{patient}").json()["risk"] or {}).get("band") == band)


def open_board(browser: WebDriver, stack, ward: str, token: str) -> None:
    browser.get(f"{stack.url}/ward/?ward={ward}#access_token={token}")


def test_the_board_sorts_by_news2_then_overdue_and_a_reading_resorts_it_live(
    stack, api: httpx.Client, browser: WebDriver, shots: Path
) -> None:
    ward = f"B-{uuid.uuid4().hex[:6]}"
    beds = {}
    for bed, (name, ago) in enumerate([("normal", timedelta(hours=1)), ("low", timedelta(hours=1)),
                                       ("critical", timedelta(minutes=5)), ("overdue", timedelta(hours=13)),
                                       ("single_three", timedelta(minutes=10)), ("medium", timedelta(minutes=10))],
                                      start=1):  # fmt: skip
        beds[name] = admit(api, ward, str(bed), name.replace("_", " ").title())
        observe(api, beds[name], SETS.get(name, NORMAL), ago)
    for name, patient in beds.items():
        scored(api, patient, BAND.get(name, "low"))

    open_board(browser, stack, ward, token_of(stack, scope="user/Patient.rs", subject="nurse"))
    wait = WebDriverWait(browser, 10)
    wait.until(lambda b: len(rows(b)) == 6 and b.find_element(By.ID, "live").get_attribute("data-live") == "true")
    assert "access_token" not in browser.current_url  # taken from the address bar
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280  # fits a 1280x800 screen
    expected = ["critical", "medium", "single_three", "low", "overdue", "normal"]
    scores = [17, 6, 3, 4, 0, 0]
    assert rows(browser) == [(beds[name], str(score)) for name, score in zip(expected, scores, strict=True)]
    assert [due == "Overdue" for _, _, due in board(browser)] == [False, False, False, False, True, False]
    band_cell = browser.find_element(By.CSS_SELECTOR, f'tr[data-patient-id="{beds["critical"]}"] td.band')
    assert "High" in band_cell.text  # the band in words, not colour alone

    observe(api, beds["normal"], SETS["critical"], timedelta(0))  # the last bed deteriorates
    WebDriverWait(browser, 2).until(lambda b: (beds["normal"], "17") in rows(b)[:2])
    browser.save_screenshot(str(shots / "ward-board.png"))


def test_the_chart_shows_72_hours_in_the_rcp_order_and_draws_the_trend(
    stack, api: httpx.Client, browser: WebDriver, shots: Path
) -> None:
    ward = f"C-{uuid.uuid4().hex[:6]}"
    patient = admit(api, ward, "3", "Chart")
    course = ["normal", "normal", "low", "low", "medium", "medium", "critical", "critical", "medium", "low", "normal"]
    for hours_ago, name in zip(range(70, 0, -6), course, strict=False):
        observe(api, patient, SETS[name], timedelta(hours=hours_ago))
    observe(api, patient, SETS["normal"], timedelta(hours=80))  # older than the chart's 72 hours
    eventually(lambda: len(api.get(f"/api/v1/patient/{patient}/chart").json()["rows"]) == 11)

    open_board(browser, stack, ward, token_of(stack, scope="user/Patient.rs", subject="nurse"))
    WebDriverWait(browser, 10).until(lambda b: len(rows(b)) == 1)
    row = browser.find_element(By.CSS_SELECTOR, "#board tbody tr")
    row.send_keys(Keys.ENTER)  # the keyboard opens the chart, as a click does
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "trend").get_attribute("data-points") == "11")
    assert browser.current_url.endswith(f"/ward/patients/{patient}")
    labels = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#chart tbody th")]
    assert labels == ["Respirations", "SpO2 scale 1", "Air or oxygen", "Systolic BP", "Diastolic BP", "Pulse",
                      "Consciousness", "Temperature", "NEWS2 total"]  # fmt: skip
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart thead th")) == 1 + 11
    respirations = browser.find_elements(By.CSS_SELECTOR, "#chart tbody tr:first-child td")
    assert [cell.get_attribute("class") for cell in respirations][6] == "score-3"  # 26/min
    assert len(browser.find_elements(By.CSS_SELECTOR, 'svg[data-chart="news2"] circle')) == 11
    browser.save_screenshot(str(shots / "ward-chart.png"))


def test_a_tablet_shows_the_board(stack, api: httpx.Client, browser: WebDriver) -> None:
    ward = f"T-{uuid.uuid4().hex[:6]}"
    patient = admit(api, ward, "1", "Tablet")
    browser.set_window_size(768, 1024)
    try:
        open_board(browser, stack, ward, token_of(stack, scope="user/Patient.rs", subject="nurse"))
        WebDriverWait(browser, 10).until(lambda b: rows(b) == [(patient, "")])
        assert browser.find_element(By.ID, "board").is_displayed()
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 768  # no sideways scroll
    finally:
        browser.set_window_size(1280, 800)


def test_a_patients_token_is_refused_the_board_and_sees_only_its_own_chart(
    stack, api: httpx.Client, browser: WebDriver
) -> None:
    ward = f"P-{uuid.uuid4().hex[:6]}"
    own, other = admit(api, ward, "1", "Own"), admit(api, ward, "2", "Other")
    observe(api, own, NORMAL, timedelta(minutes=5))
    scored(api, own, "low")
    patient_token = token_of(stack, scope="patient/Patient.r", patient=own, subject="home-app")
    open_board(browser, stack, ward, patient_token)
    message = WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "message"))
    WebDriverWait(browser, 10).until(lambda b: message.is_displayed())
    assert "may not see a ward board" in message.text and rows(browser) == []
    browser.get(f"{stack.url}/ward/patients/{own}")  # the token stays in this tab's sessionStorage
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "trend").get_attribute("data-points") == "1")
    browser.get(f"{stack.url}/ward/patients/{other}")
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "message").is_displayed())
    assert browser.find_elements(By.CSS_SELECTOR, "#chart tbody tr") == []


def test_the_pages_load_nothing_from_elsewhere_over_http_and_https(stack) -> None:
    for path, kind in (("/ward/", "text/html"), ("/ward/board.js", "text/javascript"),
                       (f"/ward/patients/{uuid.uuid4()}", "text/html")):  # fmt: skip
        response = httpx.get(stack.url + path)
        assert (response.status_code, response.headers["content-type"]) == (200, f"{kind}; charset=utf-8"), path
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
    page = httpx.get(stack.url + "/ward/").text
    assert "http://" not in page and "https://" not in page
    # The same over HTTPS (the dev certificate is self-signed).
    secure = httpx.get(stack.tls_url + "/ward/", verify=False)
    assert secure.status_code == 200 and secure.headers["content-security-policy"].startswith("default-src 'self'")
