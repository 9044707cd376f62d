"""Token verification on its own: keys from a JWKS URL or file, rotation by `kid`, the cache,
and SMART scope parsing (painkiller_common/security/auth.py, doc/security.md)."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from painkiller_common.security.auth import AuthSettings, Scope, TokenVerifier, Unauthorized, parse_scopes

ISSUER, AUDIENCE = "https://idp.test/realms/ward", "painkiller"


class Key:
    """A signing key as an identity provider holds it: private part, and its public JWK."""

    def __init__(self, kid: str, algorithm: str = "ES256") -> None:
        self.kid, self.algorithm = kid, algorithm
        if algorithm == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            public = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**public, "kid": kid, "alg": algorithm, "use": "sig"}

    def token(self, **claims: object) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "dr-a", "exp": now + 300, "scope": "user/Patient.r", **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


class JwksServer:
    """The provider's JWKS endpoint, on loopback; `keys` can change while it runs."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                outer.fetches += 1
                body = json.dumps({"keys": [key.jwk for key in outer.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/certs"


@pytest.fixture
def provider() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.server.shutdown()


def verifier_for(**settings: object) -> TokenVerifier:
    return TokenVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE, **settings))


def test_keys_come_from_the_jwks_url_and_rotate_without_a_restart(provider: JwksServer) -> None:
    old, new = Key("2026-a"), Key("2026-b", "RS256")
    provider.keys = [old]
    verifier = verifier_for(jwks_url=provider.url, jwks_refetch_after_s=0.5)
    assert verifier.verify(old.token()).subject == "dr-a"
    provider.keys = [old, new]  # the provider publishes the next key, then signs with it
    with pytest.raises(Unauthorized, match="unknown key"):  # within the refetch pause: not asked yet
        verifier.verify(new.token(sub="dr-b"))
    time.sleep(0.6)
    assert verifier.verify(new.token(sub="dr-b")).subject == "dr-b"
    assert verifier.verify(old.token()).subject == "dr-a"
    assert provider.fetches == 2  # the unknown kid fetched the set once more; known ones did not


def test_a_key_removed_from_the_file_no_longer_verifies(tmp_path: Path) -> None:
    old, new = Key("old"), Key("new")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [old.jwk]}))
    verifier = verifier_for(jwks_file=str(jwks))
    assert verifier.verify(old.token()).subject == "dr-a"
    time.sleep(0.01)
    jwks.write_text(json.dumps({"keys": [new.jwk]}))
    assert verifier.verify(new.token()).subject == "dr-a"
    with pytest.raises(Unauthorized, match="unknown key"):
        verifier.verify(old.token())


def test_a_key_withdrawn_from_the_jwks_url_is_refused_within_the_cache_time(provider: JwksServer) -> None:
    """A key the provider takes out of its set (compromised, say) must stop verifying tokens, those
    already verified and remembered too, once the key set's cache time has passed."""
    withdrawn, kept = Key("withdrawn"), Key("kept")
    provider.keys = [withdrawn, kept]
    verifier = verifier_for(jwks_url=provider.url, jwks_cache_s=0.5, jwks_refetch_after_s=0)
    token = withdrawn.token()
    verifier.remember(token, verifier.verify(token))
    provider.keys = [kept]
    time.sleep(0.6)
    assert verifier.cached(token) is None
    with pytest.raises(Unauthorized, match="unknown key"):
        verifier.verify(token)
    assert verifier.verify(kept.token(sub="dr-k")).subject == "dr-k"


def test_a_token_remembered_is_refused_once_its_key_left_the_file(tmp_path: Path) -> None:
    old, new = Key("old"), Key("new")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [old.jwk, new.jwk]}))
    verifier = verifier_for(jwks_file=str(jwks), jwks_cache_s=0.5)
    token = old.token()
    verifier.remember(token, verifier.verify(token))
    jwks.write_text(json.dumps({"keys": [new.jwk]}))
    assert verifier.cached(token) is not None  # trusted for the cache time, no longer
    time.sleep(0.6)
    assert verifier.cached(token) is None
    with pytest.raises(Unauthorized, match="unknown key"):
        verifier.verify(token)


def test_settings_cap_the_key_set_cache_at_5_minutes() -> None:
    with pytest.raises(ValidationError):
        AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file="x", jwks_cache_s=301)


def test_a_key_is_used_only_with_its_own_algorithm(tmp_path: Path) -> None:
    rsa_key = Key("rsa", "RS256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [rsa_key.jwk]}))
    forged = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "rsa"},
    )
    with pytest.raises(Unauthorized, match="does not match the key"):
        verifier_for(jwks_file=str(jwks)).verify(forged)


def test_a_cached_token_is_never_used_past_its_expiry(tmp_path: Path) -> None:
    key = Key("k")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.jwk]}))
    verifier = verifier_for(jwks_file=str(jwks), leeway_s=0)
    token = key.token(exp=int(time.time()) + 2)
    verifier.remember(token, verifier.verify(token))
    assert verifier.cached(token) is not None
    time.sleep(2.1)
    assert verifier.cached(token) is None
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    key = Key("k")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.jwk]}))
    verifier = verifier_for(jwks_file=str(jwks), cache_size=3)
    tokens = [key.token(sub=f"user-{i}") for i in range(5)]
    for token in tokens:
        verifier.remember(token, verifier.verify(token))
    assert [verifier.cached(t) is not None for t in tokens] == [False, False, True, True, True]


def test_scopes_may_come_as_a_list_in_scp(tmp_path: Path) -> None:
    key = Key("k")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.jwk]}))
    principal = verifier_for(jwks_file=str(jwks)).verify(key.token(scope=None, scp=["user/Observation.rs"]))
    assert principal.scopes == (Scope("user", "Observation", "rs"),)


def test_settings_refuse_more_than_30_s_of_leeway_and_a_missing_key_source() -> None:
    with pytest.raises(ValidationError):
        AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file="x", leeway_s=31)
    with pytest.raises(RuntimeError, match="AUTH_JWKS_URL"):
        TokenVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE))


@pytest.mark.parametrize(
    ("granted", "parsed"),
    [
        ("user/Patient.rs", [Scope("user", "Patient", "rs")]),
        ("patient/Observation.read", [Scope("patient", "Observation", "rs")]),
        ("system/*.write", [Scope("system", "*", "cud")]),
        ("user/*.*", [Scope("user", "*", "cruds")]),
        ("openid profile user/Patient.sr fhirUser", []),  # out of order: not a SMART v2 scope
        ("user/Patient.", []),
        ("admin/Patient.cruds", []),
    ],
)
def test_smart_scopes_are_parsed_and_anything_else_ignored(granted: str, parsed: list[Scope]) -> None:
    assert list(parse_scopes(granted)) == parsed
