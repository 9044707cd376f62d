"""A signing key and tokens for development and tests, with no identity provider.

`make up` calls `ensure_dev_key` (a key under .run/auth, never committed) and points both services
at its public JWKS; `make token` and the tests call `mint`. In production the identity provider
signs tokens and this module is not used (doc/security.md).
"""

import argparse
import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEV_ISSUER = "https://painkiller.dev/auth"
DEV_AUDIENCE = "painkiller"
# Every scope of every resource, as a clinician's or an integration's broadest token.
ALL_SCOPES = "user/*.cruds system/*.cruds"
PRIVATE_KEY = "signing-key.pem"
JWKS = "jwks.json"


def ensure_dev_key(directory: Path) -> Path:
    """Make an ES256 key pair in `directory` unless there is one; return the public JWKS's path."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path, jwks_path = directory / PRIVATE_KEY, directory / JWKS
    if private_path.exists() and jwks_path.exists():
        return jwks_path
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path.touch(mode=0o600)
    private_path.write_bytes(pem)
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update(kid=f"dev-{uuid.uuid4().hex[:12]}", alg="ES256", use="sig")
    jwks_path.write_text(json.dumps({"keys": [public]}, indent=2))
    return jwks_path


def mint(
    directory: Path,
    *,
    scope: str = ALL_SCOPES,
    subject: str = "dev-user",
    patient: str | None = None,
    ttl_s: int = 12 * 3600,
    client_id: str = "painkiller-dev",
) -> str:
    """A token signed with the dev key in `directory`."""
    kid = json.loads((directory / JWKS).read_text())["keys"][0]["kid"]
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": subject,
        "azp": client_id,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if patient:
        claims["patient"] = patient
    return jwt.encode(claims, (directory / PRIVATE_KEY).read_bytes(), algorithm="ES256", headers={"kid": kid})


def main() -> None:
    """`python -m painkiller_testing.devauth DIR [--scope S] [--patient ID] [--sub S] [--ttl N]`."""
    parser = argparse.ArgumentParser(description="Print a dev token; the token alone is the last line.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--scope", default="", help=f"default: {ALL_SCOPES}")
    parser.add_argument("--patient", default="", help="the patient a patient/ scope reaches")
    parser.add_argument("--sub", default="", help="default: dev-user")
    parser.add_argument("--ttl", default="", help="seconds, default 12 hours")
    args = parser.parse_args()
    if not (args.directory / PRIVATE_KEY).exists():
        raise SystemExit(f"No dev signing key in {args.directory}: run `make up` first.")
    scope, subject, ttl_s = args.scope or ALL_SCOPES, args.sub or "dev-user", int(args.ttl or 12 * 3600)
    print(f"# scope={scope!r} sub={subject} patient={args.patient or '-'} ttl={ttl_s}s")
    print(mint(args.directory, scope=scope, subject=subject, patient=args.patient or None, ttl_s=ttl_s))


if __name__ == "__main__":
    main()
