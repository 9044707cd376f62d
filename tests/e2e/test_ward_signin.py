"""Signing in to the ward board with OpenID Connect (authorization code with PKCE), in Chromium,
against a real OpenID provider the test runs: node-oidc-provider, an OpenID Certified
implementation from npm (tests/oidc/provider.mjs), with its development login and consent pages.
The APIs of this stack trust that provider's tokens only."""

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import broker, eventually, running_stack, stack_module
from harness import test_databases as databases_named
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from ward_pages import rows

OIDC_DIR = Path(__file__).parents[1] / "oidc"
AUDIENCE = "https://painkiller.test/api"
SCOPE = "openid user/Patient.rs user/Patient.c"  # the board's, and creating a patient for the test
PROVIDER_PORT = stack_module.free_port()
ISSUER = f"http://127.0.0.1:{PROVIDER_PORT}"


@pytest.fixture(scope="module")
def stack() -> Iterator[stack_module.Stack]:
    trust_provider = {"AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "AUTH_JWKS_URL": f"{ISSUER}/jwks",
                      "AUTH_JWKS_FILE": ""}  # fmt: skip
    overrides = {name: trust_provider for name in ("patient-api", "measurement-api")}
    sign_in = {"WARD_OIDC_ISSUER": ISSUER, "WARD_OIDC_SCOPE": SCOPE}
    with broker() as users, running_stack(databases_named("signin"), users, overrides, env=sign_in) as started:
        yield started


@pytest.fixture(scope="module")
def provider(stack: stack_module.Stack) -> Iterator[str]:
    """The provider, its one client the board at this stack's address."""
    subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, timeout=600)
    command = ["node", "provider.mjs", str(PROVIDER_PORT), stack.url, AUDIENCE]
    with (
        (stack.run_dir / "oidc-provider.log").open("w") as log,
        subprocess.Popen(command, cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT) as process,
    ):
        try:
            eventually(lambda: answers(f"{ISSUER}/.well-known/openid-configuration"))
            yield ISSUER
        finally:
            process.terminate()


def test_the_provider_refuses_the_boards_client_without_pkce(stack: stack_module.Stack, provider: str) -> None:
    """What makes the sign-in above proof that the board used PKCE: without it, no code."""
    asked = {"client_id": "painkiller-ward", "response_type": "code", "scope": "openid",
             "redirect_uri": f"{stack.url}/ward/callback.html", "state": "s"}  # fmt: skip
    refused = httpx.get(f"{provider}/auth", params=asked)
    assert refused.status_code == 303
    back = httpx.URL(refused.headers["location"]).params
    assert (back["error"], "PKCE" in back["error_description"]) == ("invalid_request", True)


def answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def test_a_nurse_signs_in_with_code_and_pkce_and_the_token_never_rides_in_a_url(
    stack: stack_module.Stack, provider: str, browser: WebDriver
) -> None:
    ward = f"S-{uuid.uuid4().hex[:6]}"
    board = f"{stack.url}/ward/?ward={ward}"
    browser.get(board)
    WebDriverWait(browser, 10).until(lambda b: b.current_url.startswith(provider))  # its login page
    browser.find_element(By.NAME, "login").send_keys("nurse.jones")
    browser.find_element(By.NAME, "password").send_keys("any")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "input[name=prompt][value=consent]"))
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # Back on the board, signed in and live, with no code, state or token in its address.
    WebDriverWait(browser, 10).until(lambda b: b.current_url == board)
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "live").get_attribute("data-live") == "true")
    stored = browser.execute_script(
        "return Object.keys(sessionStorage).filter(k => k.startsWith('oidc.user:')).map(k => sessionStorage[k])"
    )
    token = json.loads(stored[0])["access_token"]
    assert token.count(".") == 2  # a JWT for the API, from the provider

    # The provider's token works on the API: a patient admitted to the ward with it appears live.
    body = {"first_name": "Signed", "last_name": "In", "age": 50, "location": {"ward": ward, "bed": "9"}}
    created = httpx.post(f"{stack.url}/api/v1/patient", json=body, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text
    WebDriverWait(browser, 5).until(lambda b: [patient for patient, _ in rows(b)] == [created.json()["id"]])
    # Every URL NGINX saw, the query strings included (the callback's code), held no token.
    seen = httpx.get(f"{stack.url}/ward/config.json").json()
    assert seen == {"issuer": provider, "client_id": "painkiller-ward", "scope": SCOPE}
    access_log = (stack.run_dir / "nginx" / "access.log").read_text()
    assert token not in access_log and token[:20] not in access_log
