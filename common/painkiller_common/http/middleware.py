"""The ASGI middleware of every app: the access log and request metrics, protective headers, and
prefix aliases. Plain ASGI rather than BaseHTTPMiddleware, which costs a task and a stream per
request."""

import logging
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from painkiller_common.observability import logs, metrics

logger = logging.getLogger("painkiller.access")


class AccessLog:
    """One log line per request (method, path, status, time, request id) and its duration in
    `http_server_request_duration_seconds`.

    Plain ASGI rather than BaseHTTPMiddleware, which costs a task and a stream per request. The
    path only, never the query string: filters such as `name` are patient data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, stream = 500, False

        async def send_status(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                stream = (b"content-type", b"text/event-stream; charset=utf-8") in message["headers"]
            await send(message)

        headers = dict(scope["headers"])
        sent_id, traceparent = (headers.get(name, b"").decode("latin-1") or None for name in HEADERS_IN)
        request_id = logs.request_id_of(sent_id)  # what the audit row records too (Access)
        with logs.work(request_id=request_id, traceparent=traceparent):
            try:
                await self.app(scope, receive, send_status)
            finally:
                elapsed = time.perf_counter() - started
                route = scope.get("route")  # set by the router: its template, never the raw path
                template = getattr(route, "path_format", None) or "unmatched"
                if not stream:  # an event stream lasts as long as its reader: not a request's latency
                    metrics.REQUEST_DURATION.labels(scope["method"], template, str(status)).observe(elapsed)
                logger.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"method": scope["method"], "path": scope["path"], "status": status,
                           "duration_ms": round(elapsed * 1000, 1)},
                )  # fmt: skip


# The ids a request brings (NGINX sets X-Request-ID when the client did not), for logs.work.
HEADERS_IN = (b"x-request-id", b"traceparent")

# Patient data must not be cached (by a browser or a proxy), sniffed into another type, framed by
# another page, or leak its URL in a Referer. NGINX says the same, but in Kubernetes the Ingress
# reaches the services directly: the apps say it themselves, on every answer.
PROTECTIVE_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)


class ProtectiveHeaders:
    """Adds PROTECTIVE_HEADERS to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_protected(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in PROTECTIVE_HEADERS if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_protected)


class PrefixAliases:
    """Serves each alias prefix as the prefix it stands for: the path is rewritten before routing,
    so each route exists once, and the alias stays out of the OpenAPI document."""

    def __init__(self, app: ASGIApp, aliases: Mapping[str, str]) -> None:
        self.app = app
        self.aliases = aliases

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._rewritten(scope)
        await self.app(scope, receive, send)

    def _rewritten(self, scope: Scope) -> Scope:
        path: str = scope["path"]
        for alias, prefix in self.aliases.items():
            if path == alias or path.startswith(f"{alias}/"):
                raw: bytes = scope.get("raw_path") or path.encode()
                return {**scope, "path": prefix + path[len(alias) :], "raw_path": prefix.encode() + raw[len(alias) :]}
        return scope
