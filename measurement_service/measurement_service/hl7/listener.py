"""The MLLP listener: `python -m measurement_service hl7` (doc/hl7.md).

MLLP frames each message as 0x0B, the message, 0x1C 0x0D. A connection carries messages one
after another; each gets its ACK, in order, only once what it asked for is committed. Several
messages in one TCP write and one message over several are the same to a stream reader. Bytes
before the start byte are dropped; a block without one is refused (AR); a block over the size cap
is refused and its connection closed, as what follows it cannot be trusted to be a frame start.

Behind NGINX's stream proxy the sender's address comes in a PROXY protocol line (v1) first;
senders outside the allow-list are disconnected and counted.
"""

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import uuid
from typing import Any

import httpx
import psycopg
import psycopg_pool
from prometheus_client import Counter, Gauge
from psycopg.errors import UniqueViolation

from measurement_service.config import Settings
from measurement_service.hl7 import acks, messages, store
from measurement_service.hl7.messages import Header, Observations, Problem
from measurement_service.readings.patients import PatientDirectory
from painkiller_common.db import pg
from painkiller_common.errors import Unavailable
from painkiller_common.observability import logs, metrics

logger = logging.getLogger(__name__)

START, END = b"\x0b", b"\x1c\x0d"
# What is taken; anything else is refused with AR (doc/hl7.md).
TYPES = ("ORU^R01", "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A08")

MESSAGES = Counter("painkiller_hl7_messages_total", "HL7 v2 messages answered, by type and ACK code.", ["type", "ack"])
REFUSED_SENDERS = Counter("painkiller_hl7_refused_connections_total", "MLLP connections from senders not allowed.")
HELD = Gauge("painkiller_hl7_held_messages", "Messages held until a patient has their MRN.")


class Listener:
    def __init__(self, settings: Settings, pool: pg.Pool, directory: PatientDirectory) -> None:
        self.settings, self.pool, self.directory = settings, pool, directory
        self.allowed = networks(settings.hl7_allowed_senders) or LOOPBACK
        proxies = settings.forwarded_allow_ips
        self.proxies = ANYWHERE if proxies.strip() == "*" else networks(proxies)

    async def serve(self, heartbeat: metrics.Heartbeat) -> None:
        limit = self.settings.hl7_max_message_bytes
        server = await asyncio.start_server(self.connection, self.settings.host, self.settings.hl7_port, limit=limit)
        logger.info("MLLP listener on %s:%s", self.settings.host, self.settings.hl7_port)
        async with server:
            while True:
                heartbeat.beat()
                await self.release_held()
                await asyncio.sleep(self.settings.hl7_release_interval_s)

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sender = await self.sender(reader, writer)
            if sender is None:
                REFUSED_SENDERS.inc()
                return
            await self.conversation(reader, writer, sender)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the sender went away; whatever it had been answered AA for is committed
        finally:
            writer.close()

    async def sender(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str | None:
        """The sender's address if it may send, else None. Behind NGINX, from the PROXY line,
        believed only from NGINX's own address (`forwarded_allow_ips`, as the API's headers)."""
        address = writer.get_extra_info("peername")[0]
        if self.settings.hl7_proxy_protocol:
            if not within(address, self.proxies):
                return None
            line = (await reader.readuntil(b"\r\n")).decode("ascii", "replace").split()
            address = line[2] if len(line) >= 6 and line[0] == "PROXY" else address
        return address if within(address, self.allowed) else None

    async def conversation(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sender: str) -> None:
        while True:
            try:
                block = await reader.readuntil(END)
            except asyncio.LimitOverrunError:
                problem = Problem("AR", f"message over {self.settings.hl7_max_message_bytes} bytes", code=207)
                MESSAGES.labels("other", "AR").inc()
                writer.write(frame(acks.ack(acks.UNKNOWN, "AR", problem)))
                await writer.drain()
                return
            writer.write(frame(await self.answer(block[: -len(END)], sender)))
            await writer.drain()

    async def answer(self, block: bytes, sender: str) -> str:
        """The ACK for one block, once what it says is committed."""
        with logs.work(request_id=uuid.uuid4().hex, traceparent=None):
            start = block.find(START)
            if start < 0:
                MESSAGES.labels("other", "AR").inc()
                return acks.ack(acks.UNKNOWN, "AR", Problem("AR", "no MLLP start byte (0x0B)", code=100))
            raw = decode(block[start + 1 :])
            try:
                header, code, problem = await self.handle(raw, sender)
            except Exception as exc:  # a bug: the sender still gets an answer, and resends
                logger.error("message answered AE after an unexpected %s", type(exc).__name__)  # no PHI
                header, code, problem = acks.UNKNOWN, "AE", Problem("AE", "internal error; resend", code=207)
            MESSAGES.labels(header.message_type if header.message_type in TYPES else "other", code).inc()
            return acks.ack(header, code, problem)

    async def handle(self, raw: str, sender: str) -> tuple[Header, str, Problem | None]:
        header = acks.UNKNOWN
        try:
            message = messages.parse(raw)
            header = messages.header_of(message)
            messages.check(header, TYPES)
            if header.message_type == "ORU^R01":
                await self.accept(header, messages.observations(message), raw, sender)
            else:
                await self.admit(header, messages.admission(message, header.trigger), raw, sender)
        except Problem as problem:
            state = "refused" if problem.ack == "AR" else "error"
            await self.keep_refusal(store.Kept(header, raw, sender, state, problem.ack, detail=problem.text))
            return header, problem.ack, problem
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout, Unavailable) as exc:
            logger.warning("%s: message answered AE, for the sender to resend", type(exc).__name__)
            return header, "AE", Problem("AE", "the database or the patient service is unavailable; resend", code=206)
        return header, "AA", None

    async def accept(self, header: Header, found: Observations, raw: str, sender: str) -> None:
        """Store the message's readings, or hold it for a patient not known yet; nothing for a
        resend of a message accepted before."""
        async with pg.connection(self.pool) as conn:
            seen = await store.look_up(conn, header, found.mrn)
            if seen.before:
                return
            patient_id = seen.patient_id or await self.identify(conn, found.mrn)
            held = store.Kept(header, raw, sender, "held", "AA", mrn=found.mrn, readings=found.readings)
            if patient_id is not None and len(found.readings) == 1:  # most messages: one round trip
                if not await store.record_and_keep(conn, held, patient_id, found.readings[0]):
                    await self.keep_once(conn, held)  # the patient was deleted meanwhile
                return
            try:
                async with conn.transaction():
                    stored = None if patient_id is None else await store.record(
                        conn, header, sender, patient_id, found.readings
                    )  # fmt: skip
                    kept = held
                    if stored is not None:
                        state = "stored" if stored else "duplicate"
                        kept = store.Kept(header, raw, sender, state, "AA", mrn=found.mrn, patient_id=patient_id,
                                          measurement_id=stored[0] if stored else None)  # fmt: skip
                    await store.keep(conn, kept)
            except UniqueViolation as exc:
                if exc.diag.table_name != "hl7_messages":
                    raise
                # The same message at the same moment on another connection: that one is stored.

    @staticmethod
    async def keep_once(conn: pg.Connection, kept: store.Kept) -> None:
        """Keep a message, unless the same one was kept a moment ago on another connection."""
        with contextlib.suppress(UniqueViolation):
            await store.keep(conn, kept)

    async def admit(self, header: Header, admission: dict[str, Any], raw: str, sender: str) -> None:
        """Have the patient service apply an ADT message (once, however often it is sent), then
        keep the message; `AE` naming the field the patient service refused."""
        async with pg.connection(self.pool) as conn:
            if (await store.look_up(conn, header, admission["mrn"])).before:
                return
            actor = f"{header.sending_application}@{header.sending_facility}"[:255]
            response = await self.directory.admit({**admission, "sender": actor}, idempotency_key(header))
            if response.status_code in (404, 422):
                raise refusal_of(response)
            patient_id = uuid.UUID(response.json()["patient_id"])
            await store.remember(conn, admission["mrn"], patient_id)  # its readings need not wait
            await self.keep_once(conn, store.Kept(header, raw, sender, "stored", "AA", mrn=admission["mrn"],
                                                  patient_id=patient_id))  # fmt: skip

    async def identify(self, conn: pg.Connection, mrn: str) -> uuid.UUID | None:
        """Ask the patient service who has `mrn`, and remember it; None if no one does or it
        cannot say (the message is then held, and released once it can)."""
        try:
            patient_id = (await self.directory.identify([mrn])).get(mrn)
        except Unavailable:
            return None
        if patient_id is not None:
            await store.remember(conn, mrn, patient_id)
        return patient_id

    async def keep_refusal(self, kept: store.Kept) -> None:
        """Keep a refused message for audit; if the database is down, its ACK says so anyway."""
        try:
            async with pg.connection(self.pool) as conn:
                await store.keep(conn, kept)
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            logger.warning("a refused message could not be kept: database unavailable")

    async def release_held(self) -> None:
        """Record the held messages whose patients now exist; give up those past the retention."""
        try:
            async with pg.connection(self.pool) as conn:
                await store.expire(conn, self.settings.hl7_held_retention_days)
                mrns = await store.held_mrns(conn)
                found = await self.directory.identify(mrns) if mrns else {}
                for mrn, patient_id in found.items():
                    await store.release(conn, mrn, patient_id)
                HELD.set(await store.held_count(conn))
        except (psycopg.Error, psycopg_pool.PoolTimeout, Unavailable) as exc:
            logger.warning("held messages not released this time: %s", type(exc).__name__)


Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]
LOOPBACK: Networks = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
ANYWHERE: Networks = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]


def networks(listed: str) -> Networks:
    """Addresses or networks separated by spaces or commas."""
    return [ipaddress.ip_network(net, strict=False) for net in listed.replace(",", " ").split()]


def idempotency_key(header: Header) -> str:
    """The patient service applies a message once per sender and MSH-10."""
    sent = f"{header.sending_application}|{header.sending_facility}|{header.control_id}"
    return "hl7-" + hashlib.sha256(sent.encode()).hexdigest()[:40]


def refusal_of(response: httpx.Response) -> Problem:
    """The patient service's 404 or 422 as an AE naming the segment and field at fault."""
    problem = response.json()
    if response.status_code == 404:
        return Problem("AE", problem.get("detail", "no patient has this MRN"), "PID", 1, 3, code=204)
    error = (problem.get("errors") or [{}])[0]
    field = str(error.get("field", "")).split(".")[0]
    segment, position = messages.ADMISSION_FIELDS.get(field, ("PID", 3))
    return Problem("AE", f"{field}: {error.get('message', problem.get('detail', ''))}", segment, 1, position, code=102)


def within(address: str, allowed: Networks) -> bool:
    try:
        return any(ipaddress.ip_address(address) in network for network in allowed)
    except ValueError:
        return False


def frame(ack: str) -> bytes:
    return START + ack.encode() + END


def decode(raw: bytes) -> str:
    """UTF-8, as most senders write; else Latin-1, which every byte is."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def run(settings: Settings) -> None:
    asyncio.run(_main(settings))


async def _main(settings: Settings) -> None:
    heartbeat = metrics.Heartbeat()
    metrics.serve(settings.metrics_port, settings.host, heartbeat=heartbeat)
    pool = await pg.open_pool(
        settings.database_url, max_size=settings.db_pool_size, timeout_s=settings.db_pool_timeout_s
    )
    directory = PatientDirectory(
        settings.patient_service_url, settings.patient_service_timeout_s, settings.patient_service_token_file
    )
    try:
        await Listener(settings, pool, directory).serve(heartbeat)
    finally:
        await directory.close()
        await pool.close()
