"""Bearer tokens: who is calling and what they may do, checked by each service itself.

A token is a JWT signed with RS256 or ES256 by a key of a JWKS (a URL, or a file for dev), picked
by `kid` so keys can rotate. `iss`, `aud`, `exp` and `nbf` are checked with at most 30 s of leeway;
`alg: none` and HMAC are refused because the allowed algorithms are asymmetric only. Scopes follow
SMART on FHIR v2: `<context>/<Resource>.<cruds>`; v1's `.read`, `.write` and `.*` are read as
`.rs`, `.cud` and `.cruds`. See doc/security.md.
"""

import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from painkiller_common.http.problems import Problem

ALGORITHMS = ("RS256", "ES256")
CONTEXTS = ("user", "patient", "system")
PERMISSIONS = "cruds"
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": PERMISSIONS}
_SCOPE = re.compile(r"(user|patient|system)/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)")


class AuthSettings(BaseSettings):
    """AUTH_* variables, the same for both services: they trust the same identity provider."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", env_file=".env", extra="ignore")

    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = Field(default=None, description="The provider's JWKS; refetched for an unknown kid.")
    jwks_file: str | None = Field(default=None, description="A local JWKS (dev); read again when it changes.")
    # An unknown kid fetches the JWKS again at most this often: a stream of made-up kids must not
    # turn into a stream of requests to the provider.
    jwks_refetch_after_s: float = Field(default=30, ge=0, le=3600)
    # How long a key set, and a token verified with it, is trusted before it is checked again: a
    # key the provider withdrew (compromised, say) is refused within this time, never later.
    jwks_cache_s: float = Field(default=300, gt=0, le=300)
    leeway_s: int = Field(default=30, ge=0, le=30)
    # Empty: `scope` (space-separated, OAuth 2) or else `scp` (a list, Entra ID and Okta).
    scope_claim: str = ""
    patient_claim: str = "patient"
    cache_size: int = Field(default=10_000, ge=0, le=1_000_000)


class Unauthorized(Problem):
    """401 (RFC 6750): no token, or one we cannot trust."""

    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str, *, token_sent: bool) -> None:
        challenge = 'Bearer realm="painkiller"'
        if token_sent:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(Problem):
    """403: a valid token whose scopes do not allow this."""

    status, title, slug = 403, "Forbidden", "forbidden"

    def __init__(self, detail: str, *, needed: str) -> None:
        challenge = f'Bearer realm="painkiller", error="insufficient_scope", scope="{needed}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


@dataclass(frozen=True)
class Scope:
    context: str
    resource: str
    permissions: str

    def allows(self, context: str, resource: str, permission: str) -> bool:
        return self.context == context and self.resource in (resource, "*") and permission in self.permissions


def parse_scopes(granted: str | list[Any]) -> tuple[Scope, ...]:
    """The SMART scopes among `granted`; anything else (openid, profile, ...) is ignored."""
    words = granted.split() if isinstance(granted, str) else [w for w in granted if isinstance(w, str)]
    scopes = []
    for word in words:
        if match := _SCOPE.fullmatch(word):
            context, resource, permissions = match.groups()
            if permissions := _V1_PERMISSIONS.get(permissions, permissions):
                scopes.append(Scope(context, resource, permissions))
    return tuple(scopes)


@dataclass(frozen=True)
class Principal:
    """The caller a verified token names."""

    subject: str
    client_id: str | None
    scopes: tuple[Scope, ...]
    patient_id: uuid.UUID | None  # the one patient a `patient/` scope reaches
    expires_at: float

    def granted_in(self, resource: str, permissions: str, contexts: tuple[str, ...]) -> str | None:
        """The first of `contexts` in which every permission is granted on `resource`, or None."""
        for context in contexts:
            if all(any(s.allows(context, resource, p) for s in self.scopes) for p in permissions):
                return context
        return None


class JwksFile:
    """Keys from a JWKS file, read again whenever the file changes (rotation without restart)."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._mtime = -1.0
        self._keys: dict[str, jwt.PyJWK] = {}

    def get(self, kid: str) -> jwt.PyJWK | None:
        mtime = os.stat(self._path).st_mtime
        if mtime != self._mtime:
            keys = jwt.PyJWKSet.from_dict(json.loads(self._path.read_text())).keys
            self._keys, self._mtime = {k.key_id: k for k in keys if k.key_id}, mtime
        return self._keys.get(kid)


class JwksUrl:
    """Keys from the provider's JWKS URL: the set is cached `cache_s`; an unknown kid fetches it again.

    Only the set is cached, never a key on its own (`cache_keys`): PyJWT would keep such a key
    for the life of the process, long after the provider took it out of its set."""

    def __init__(self, url: str, *, refetch_after_s: float, cache_s: float) -> None:
        self._client = jwt.PyJWKClient(
            url, cache_keys=False, lifespan=cache_s, timeout=5, cooldown_duration=refetch_after_s
        )

    def get(self, kid: str) -> jwt.PyJWK | None:
        try:
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientError:
            return None


class TokenVerifier:
    """Verifies tokens and remembers verified ones until they expire (bounded)."""

    def __init__(self, settings: AuthSettings) -> None:
        if not (settings.issuer and settings.audience and (settings.jwks_url or settings.jwks_file)):
            raise RuntimeError("AUTH_ISSUER, AUTH_AUDIENCE and AUTH_JWKS_URL or AUTH_JWKS_FILE must be set")
        self._settings = settings
        self._keys: JwksFile | JwksUrl = (
            JwksFile(settings.jwks_file)
            if settings.jwks_file
            else JwksUrl(
                settings.jwks_url or "", refetch_after_s=settings.jwks_refetch_after_s, cache_s=settings.jwks_cache_s
            )
        )
        self._cache: dict[str, tuple[Principal, float]] = {}  # token -> (principal, trusted until)

    def cached(self, token: str) -> Principal | None:
        """A token verified lately and not yet expired: no signature check on the hot path. After
        the key set's cache time it is verified again, so a withdrawn key stops working then."""
        entry = self._cache.get(token)
        if entry is not None and entry[1] <= time.time():
            del self._cache[token]
            return None
        return entry[0] if entry else None

    def remember(self, token: str, principal: Principal) -> None:
        if self._settings.cache_size == 0:
            return
        if len(self._cache) >= self._settings.cache_size:
            del self._cache[next(iter(self._cache))]  # the oldest entry: dicts keep insertion order
        self._cache[token] = (principal, min(principal.expires_at, time.time() + self._settings.jwks_cache_s))

    def verify(self, token: str) -> Principal:
        """The principal a token names; Unauthorized if anything about it is wrong."""
        try:
            claims = self._claims(token)
            return self._principal(claims)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise Unauthorized(f"The bearer token is not valid: {_reason(exc)}.", token_sent=True) from None

    def _claims(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {algorithm!r} is not accepted")
        key = self._keys.get(str(header.get("kid", "")))
        if key is None:
            raise ValueError("signed by an unknown key")
        if key.algorithm_name != algorithm:
            raise ValueError("the algorithm does not match the key")
        return jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            audience=self._settings.audience,
            issuer=self._settings.issuer,
            leeway=self._settings.leeway_s,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )

    def _principal(self, claims: dict[str, Any]) -> Principal:
        name = self._settings.scope_claim or ("scope" if "scope" in claims else "scp")
        patient = claims.get(self._settings.patient_claim)
        return Principal(
            subject=str(claims["sub"]),
            client_id=claims.get("azp") or claims.get("client_id"),
            scopes=parse_scopes(claims.get(name) or ""),
            patient_id=uuid.UUID(str(patient)) if patient else None,
            expires_at=float(claims["exp"]),
        )


def _reason(exc: Exception) -> str:
    # PyJWT's messages name the claim at fault and never echo the token.
    return str(exc).rstrip(".")[:200] or type(exc).__name__
