"""Access control on routes: `requires(resource, permissions)` as a FastAPI dependency.

It answers 401 without a valid token and 403 without the scope, and hands the route an `Access`:
who the caller is, which one patient a `patient/` token may reach, and what to write to the
audit trail. Refused attempts are audited too, in a transaction of their own (doc/security.md).
"""

import dataclasses
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import FastAPI, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from painkiller_common.db.pg import Connection
from painkiller_common.errors import Conflict, DomainError, NotFound
from painkiller_common.http.problems import Problem, on_domain_error, on_problem, status_of
from painkiller_common.observability import logs
from painkiller_common.security import audit
from painkiller_common.security.auth import CONTEXTS, Forbidden, Principal, TokenVerifier, Unauthorized

logger = logging.getLogger(__name__)

ACTIONS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
USER_OR_SYSTEM = ("user", "system")

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A JWT from the hospital's identity provider (dev: `make token`). Scopes: doc/security.md.",
)


@dataclass
class Access:
    """What a route may do for this caller, and what the audit trail records of it."""

    action: str
    resource_type: str
    request_id: str | None
    client_address: str | None
    principal: Principal | None = None
    # Set when only a `patient/` scope allowed the call: the one patient it may reach.
    only_patient: uuid.UUID | None = None

    @property
    def actor(self) -> str:
        return self.principal.subject if self.principal else "anonymous"

    def row(self, status: int) -> dict[str, object]:
        """The audit columns every row of this request shares."""
        client_id = self.principal.client_id if self.principal else None
        return {
            "actor": self.actor[:255],
            "client_id": client_id[:255] if client_id else None,
            "action": self.action,
            "resource_type": self.resource_type,
            "status": status,
            "request_id": (self.request_id or "")[:64] or None,
            "client_address": self.client_address,
        }

    def also(self, request: Request, resource: str, permissions: str, *, action: str) -> "Access":
        """The same caller's access for a second thing its request does (a conditional create's
        search): 403 unless the token grants that too, and audited as `action`, not as the first."""
        other = dataclasses.replace(self, action=action, resource_type=resource, only_patient=None)
        request.state.access = other  # a refusal is audited as what was refused
        assert other.principal is not None  # `self` was granted: its caller is known
        _grant(other, other.principal, resource, permissions, CONTEXTS)
        request.state.access = self
        return other

    def reach(self, patient_id: uuid.UUID) -> None:
        """404 for a patient this caller may not see, exactly as if it did not exist."""
        if self.only_patient is not None and patient_id != self.only_patient:
            raise NotFound(f"Patient {patient_id} does not exist.")

    def idempotency_scope(self, route: str) -> str:
        """Idempotency keys are per caller: another caller's key never replays their answer."""
        caller = hashlib.sha256(self.actor.encode()).hexdigest()[:16]
        return f"{caller} {route}"

    def record(
        self, session: Session, status: int, touched: Iterable[tuple[uuid.UUID | None, uuid.UUID | None]] = ()
    ) -> None:
        """Audit this request in `session`'s transaction: one row per (record id, patient id)."""
        audit.record(session, self.row(status), list(touched) or [(None, None)])

    async def record_async(
        self, conn: Connection, status: int, touched: Iterable[tuple[uuid.UUID | None, uuid.UUID | None]] = ()
    ) -> None:
        """`record`, on the hot path's connection (db/pg.py), in the request's transaction."""
        await audit.record_async(conn, self.row(status), list(touched) or [(None, None)])


def requires(
    resource: str, permissions: str, *, contexts: tuple[str, ...] = CONTEXTS, action: str | None = None
) -> Callable[..., Awaitable[Access]]:
    """A dependency that lets the request through only with `permissions` on `resource` in one
    of `contexts`; `action` names it in the audit trail (default: from the first permission)."""
    needed = [f"{context}/{resource}.{permissions}" for context in contexts]

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer, scopes=needed)]
    ) -> Access:
        access = Access(
            action=action or ACTIONS[permissions[0]],
            resource_type=resource,
            request_id=logs.REQUEST_ID.get(),  # the request's, well formed (AccessLog)
            client_address=request.client.host if request.client else None,
        )
        request.state.access = access
        if credentials is None:
            raise Unauthorized("Send a bearer token in the Authorization header.", token_sent=False)
        access.principal = principal = await _principal(request.app.state.token_verifier, credentials.credentials)
        _grant(access, principal, resource, permissions, contexts)
        return access

    return check


def _grant(access: Access, principal: Principal, resource: str, permissions: str, contexts: tuple[str, ...]) -> None:
    """403 unless `principal` has `permissions` on `resource` in one of `contexts`; a `patient/`
    scope limits `access` to the token's patient."""
    context = principal.granted_in(resource, permissions, contexts)
    needed = " ".join(f"{context}/{resource}.{permissions}" for context in contexts)
    if context is None:
        raise Forbidden(f"This needs one of the scopes {needed.replace(' ', ', ')}.", needed=needed)
    if context == "patient":
        if principal.patient_id is None:
            raise Forbidden("A patient/ scope needs a `patient` claim in the token.", needed=needed)
        access.only_patient = principal.patient_id


async def _principal(verifier: TokenVerifier, token: str) -> Principal:
    principal = verifier.cached(token)
    if principal is None:
        # A JWKS URL may be fetched on a key's first use: off the event loop.
        principal = await run_in_threadpool(verifier.verify, token)
        verifier.remember(token, principal)
    return principal


def install_refusal_audit(app: FastAPI, *more: type[DomainError]) -> None:
    """Audit every 401 and 403, a 404 on a data route, and the 409 (and `more`: FHIR adds its 410
    and 412) that say something of a record (it exists, it was deleted, it matches), then answer
    problem+json."""
    for refusal in (Unauthorized, Forbidden, NotFound, Conflict, *more):
        # Typed for any Exception by Starlette; only called with the class registered here.
        app.add_exception_handler(refusal, _audit_refusal)  # type: ignore[arg-type]


async def _audit_refusal(request: Request, exc: Problem | DomainError) -> Response:
    access: Access | None = getattr(request.state, "access", None)
    if access is not None:
        await run_in_threadpool(_record_refusal, request, access, status_of(request, exc))
    return await (on_problem(request, exc) if isinstance(exc, Problem) else on_domain_error(request, exc))


def _record_refusal(request: Request, access: Access, status: int) -> None:
    patient_id = _uuid(request.path_params.get("patient_id"))
    if patient_id is None and access.resource_type == "Patient":  # FHIR's /Patient/{resource_id}
        patient_id = _uuid(request.path_params.get("resource_id"))
    resource_id = _uuid(request.path_params.get("measurement_id")) or patient_id
    try:
        with request.app.state.session_factory() as session, session.begin():
            if access.principal is None:  # no valid token: counted, not a row each (tables.py)
                audit.count_refusal(session, request.app.state.refused_table, access.client_address, status)
            else:
                access.record(session, status, [(resource_id, patient_id)])
    except SQLAlchemyError as exc:  # the refusal stands; the log says the trail has a gap
        logger.error("could not audit a refused request (%s) request_id=%s", type(exc).__name__, access.request_id)


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None
