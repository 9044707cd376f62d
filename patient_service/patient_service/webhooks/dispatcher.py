"""The webhook dispatcher: `python -m patient_service dispatcher` (doc/alerts.md).

Two parts in one process. A consumer of the patient events turns each event into one delivery per
subscription that wants it, in the same transaction that marks the event processed, so an event
arriving twice makes no second delivery. Senders, each a thread with its own connection, claim
the oldest due delivery with `FOR UPDATE SKIP LOCKED`, POST it and record the attempt in that one
transaction: a sender killed mid-delivery leaves the row unlocked and still due, and any
dispatcher sends it again with the same `webhook-id`. Nothing is lost, and a receiver may see a
message twice: Standard Webhooks receivers drop duplicates by `webhook-id`.

A receiver gets one delivery at a time (the claim locks its subscription's row too, and senders
skip a locked one), and each attempt has an overall deadline (`timeout_s`), however slowly the
receiver trickles its answer: a slow or hostile receiver holds one sender for at most that long,
and never the others, so every other subscription's alerts still go out.
"""

import asyncio
import logging
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pika
from prometheus_client import Counter
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from painkiller_common.contracts import Event
from painkiller_common.db import database_unavailable, make_engine, make_session_factory
from painkiller_common.db.notifications import wake_on_notify
from painkiller_common.db.outbox import UnitOfWork
from painkiller_common.events.consumer import Batch, Consumer
from painkiller_common.events.topology import PATIENT_EVENTS_FOR_WEBHOOKS
from painkiller_common.observability import logs, metrics
from patient_service.config import Settings, WebhookSettings
from patient_service.models import EVENT_TABLES, WebhookAttempt, WebhookDelivery, WebhookSubscription
from patient_service.webhooks import store, targets

logger = logging.getLogger(__name__)

# An idle sender blocks until a delivery turns pending (a trigger NOTIFYs this channel when one is
# made by a dispatcher's consumer or resent through the API) or its earliest retry falls due; at
# the latest after POLL_S, the safety net. Polling every 2 s instead cost an idle stack 1.5 % of a
# core (4 senders, 2 queries each); every 0.25 s, 4 %.
DELIVERIES_CHANNEL = "painkiller_webhook_deliveries"
POLL_S = 30.0
BUSY_WAIT_S = 0.25  # a delivery is due but another sender holds it (or its receiver): look again soon
ATTEMPTS = Counter(
    "painkiller_webhook_attempts_total",
    "Webhook POSTs, by what came of the delivery: delivered, retrying or failed (no more retries).",
    ["outcome"],
)


class WebhookEvents(Batch):
    """Each patient event of a batch becomes a delivery per subscription to its type."""

    def __init__(self, session: UnitOfWork, settings: WebhookSettings) -> None:
        super().__init__(session)
        self.settings = settings

    def apply(self, event: Event) -> None:
        store.enqueue(self.session, event, self.settings)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempt: int, settings: WebhookSettings) -> timedelta:
    """After the `attempt`th failure: base, 2 x base, 4 x base ... up to the cap, each drawn from
    its upper half (jitter: receivers coming back are not hit by every retry at once)."""
    full = min(settings.retry_base_s * 2.0 ** min(attempt - 1, 30), settings.retry_cap_s)
    return timedelta(seconds=random.uniform(full / 2, full))


def signature(subscription: WebhookSubscription, msg_id: str, at: datetime, body: str) -> str:
    """`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`; during a rotation, one per live secret."""
    secrets = [subscription.secret]
    if subscription.previous_secret and subscription.previous_secret_until and subscription.previous_secret_until > at:
        secrets.append(subscription.previous_secret)
    return " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)


class Sender:
    """Sends due deliveries one at a time, each in its own transaction."""

    def __init__(self, engine: Engine, settings: WebhookSettings, made: threading.Event | None = None) -> None:
        self._engine = engine
        self._settings = settings
        self._made = made or threading.Event()  # set when a delivery turns pending (DELIVERIES_CHANNEL)
        # No redirects followed, no proxy or certificate settings taken from the environment. Async,
        # on a loop of this sender's own: cancelling a POST at its deadline closes its connection,
        # which no timeout of a blocking client does (they count each read on its own).
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=settings.timeout_s)
        self._loop = asyncio.new_event_loop()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if not self.deliver_one():
                    self._made.wait(self.idle_wait())
                    self._made.clear()
            except Exception as exc:  # the delivery stays due; try again
                if database_unavailable(exc):  # no traceback for an outage: it says nothing new
                    logger.warning("webhook sender: database unavailable (%s); retrying", type(exc).__name__)
                else:
                    logger.exception("webhook sender failed; retrying")
                stop.wait(1.0)
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()

    def idle_wait(self) -> float:
        """How long to wait when nothing could be claimed: until the earliest pending delivery is
        due (shortly, if it is due already but held), at most POLL_S."""
        with Session(self._engine) as session:
            due_in = session.execute(
                select(func.extract("epoch", func.min(WebhookDelivery.next_attempt_at) - func.now())).where(
                    WebhookDelivery.state == "pending"
                )
            ).scalar()
        if due_in is None:
            return POLL_S
        return min(POLL_S, max(BUSY_WAIT_S, float(due_in)))

    def deliver_one(self) -> bool:
        """Send the oldest due delivery, if there is one; whether there was."""
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            row = session.execute(
                select(WebhookDelivery, WebhookSubscription)
                .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= func.now())
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(1)
                # The subscription too: a receiver busy with one delivery is skipped by the others.
                # NO KEY UPDATE, so that new deliveries may still reference it (their foreign key
                # takes KEY SHARE): a plain FOR UPDATE would hold up the consumer that makes them.
                .with_for_update(skip_locked=True, key_share=True, of=(WebhookDelivery, WebhookSubscription))
            ).first()
            if row is None:
                return False
            delivery, subscription = row
            with logs.work(request_id=None, traceparent=None, event_id=str(delivery.event_id)):
                at = datetime.now(UTC)
                outcome = self.send(delivery, subscription, at)
                self._record(session, delivery, outcome, at)
        return True

    def send(self, delivery: WebhookDelivery, subscription: WebhookSubscription, at: datetime) -> Outcome:
        started = time.monotonic()
        try:
            target = targets.check(subscription.url, self._settings.allowed)
        except targets.UnsafeTarget as exc:
            return Outcome(None, f"unsafe target: {exc}"[:300], 0)
        msg_id = f"msg_{delivery.id.hex}"
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            "user-agent": "Painkiller-Webhooks/1",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature(subscription, msg_id, at, delivery.body),
        }
        # Connect to the address that was checked; TLS still checks the certificate for the name.
        https = urllib.parse.urlsplit(target.url).scheme == "https"
        extensions = {"sni_hostname": target.host} if https else {}
        try:
            request = self._client.build_request(
                "POST", target.connect_url, content=delivery.body.encode(), headers=headers, extensions=extensions
            )
            status = self._loop.run_until_complete(asyncio.wait_for(self._post(request), self._settings.timeout_s))
            error = None
        except (TimeoutError, httpx.TimeoutException):
            status, error = None, f"no answer within {self._settings.timeout_s:g} s"
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"[:300]
        duration_ms = int((time.monotonic() - started) * 1000)
        if status is not None and duration_ms > self._settings.timeout_s * 1000:
            status, error = None, f"no answer within {self._settings.timeout_s:g} s"
        return Outcome(status, error, duration_ms)

    async def _post(self, request: httpx.Request) -> int:
        response = await self._client.send(request, stream=True)
        await response.aclose()  # the status is the answer; the body is not read
        return response.status_code

    def _record(self, session: Session, delivery: WebhookDelivery, outcome: Outcome, at: datetime) -> None:
        delivery.attempts += 1
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempt=delivery.attempts,
                at=at,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error
        next_at = at + retry_delay(delivery.attempts, self._settings)
        if outcome.delivered:
            delivery.state, delivery.next_attempt_at, result = "delivered", None, "delivered"
        elif next_at > delivery.give_up_at:
            delivery.state, delivery.next_attempt_at, result = "failed", None, "failed"
        else:
            delivery.next_attempt_at, result = next_at, "retrying"
        ATTEMPTS.labels(result).inc()
        # The status, or only the kind of error: an error's text can quote the receiver's URL.
        answer = outcome.status_code or (outcome.error or "").split(":")[0]
        logger.info("webhook delivery %s attempt %d: %s (%s)", delivery.id, delivery.attempts, result, answer)


def run(settings: Settings) -> None:
    """The dispatcher process: senders in threads, the event consumer in the main thread."""
    # httpx logs each request's URL, which may hold a token of the receiver's: not in our logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    engine = make_engine(settings.database_url, pool_size=settings.webhooks.concurrency + 2, max_overflow=0)
    heartbeat = metrics.Heartbeat()
    metrics.serve(settings.metrics_port, settings.host, heartbeat=heartbeat)
    stop, made = threading.Event(), threading.Event()
    # A daemon: it holds nothing to hand back, and the process need not wait for its wait to end.
    listener = threading.Thread(
        target=wake_on_notify,
        args=(settings.database_url, DELIVERIES_CHANNEL, made, stop),
        name="webhook-listener",
        daemon=True,
    )
    senders = [
        threading.Thread(target=Sender(engine, settings.webhooks, made).run, args=(stop,), name=f"webhook-sender-{n}")
        for n in range(settings.webhooks.concurrency)
    ]
    for thread in [listener, *senders]:
        thread.start()
    try:
        Consumer(
            session_factory=make_session_factory(engine, EVENT_TABLES.outbox),
            tables=EVENT_TABLES,
            queue=PATIENT_EVENTS_FOR_WEBHOOKS,
            batch=lambda session: WebhookEvents(session, settings.webhooks),
            amqp_url=settings.amqp_url,
            producer=pika.URLParameters(settings.amqp_url).credentials.username,  # our own relay's events only
            heartbeat=heartbeat,
        ).run_forever()
    finally:
        stop.set()
        made.set()  # an idle sender waits on this, up to POLL_S: it sees the stop now
        for sender in senders:
            sender.join(timeout=settings.webhooks.timeout_s + 5)
