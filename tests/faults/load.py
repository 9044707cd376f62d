"""A client's steady write load for fault tests, and the end state it must leave behind.

Each reading is a full NEWS2 set at a time of its own, sent with an `Idempotency-Key` and sent
again with the same key and body after any answer that is not final (a 502, 503 or 504, a
refused or cut connection), as a careful device would: a reading is acknowledged once it got its
201, and must then be stored exactly once, whatever happened to the stack meanwhile.
"""

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

# Full NEWS2 sets: the newest reading alone decides the patient's band, and its heart rate says
# which set it was.
SETS = {
    "low": dict(respiratory_rate_bpm=16, spo2_percent=97, on_oxygen=False, systolic_mmhg=124, diastolic_mmhg=78,
                heart_rate_bpm=76, consciousness="alert", temperature_c=36.9),
    "medium": dict(respiratory_rate_bpm=22, spo2_percent=95, on_oxygen=False, systolic_mmhg=108, diastolic_mmhg=70,
                   heart_rate_bpm=104, consciousness="alert", temperature_c=38.3),
    "high": dict(respiratory_rate_bpm=27, spo2_percent=91, on_oxygen=True, systolic_mmhg=92, diastolic_mmhg=58,
                 heart_rate_bpm=128, consciousness="confusion", temperature_c=39.4),
}  # fmt: skip
BAND_OF_HEART_RATE = {values["heart_rate_bpm"]: band for band, values in SETS.items()}
RETRIED = {502, 503, 504}  # the stack is partly down: the same request again, later


@dataclass
class Writes:
    """What the clients saw: every answer's status, and the readings acknowledged with a 201."""

    statuses: Counter[int | str] = field(default_factory=Counter)
    acknowledged: dict[str, str] = field(default_factory=dict)  # reading id -> patient id
    given_up: int = 0  # sent until the load stopped without a final answer: may or may not be stored
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int | str) -> None:
        with self.lock:
            self.statuses[status] += 1


class WriteLoad:
    """`clients` threads posting readings through NGINX until `stop()`; each keeps retrying its
    current reading with the same key until it is answered for good or `grace_s` after stop."""

    def __init__(
        self, url: str, headers: dict[str, str], patient_ids: list[str], *, seed: int, clients: int = 4
    ) -> None:
        self._url, self._headers, self._patient_ids = url, headers, patient_ids
        self._rng = random.Random(seed)
        self._stopping = threading.Event()
        self._grace_s = 30.0
        self._stopped_at = 0.0
        self._clock = datetime.now(UTC) - timedelta(hours=1)  # each reading a millisecond later
        self._clock_lock = threading.Lock()
        self.writes = Writes()
        self._threads = [threading.Thread(target=self._client, args=(self._rng.random(),)) for _ in range(clients)]

    def __enter__(self) -> "WriteLoad":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Writes:
        if not self._stopping.is_set():
            self._stopped_at = time.monotonic()
            self._stopping.set()
        for thread in self._threads:
            thread.join()
        return self.writes

    def _next_time(self) -> datetime:
        with self._clock_lock:
            self._clock += timedelta(milliseconds=1)
            return self._clock

    def _client(self, seed: float) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self._url, headers=self._headers, timeout=10) as client:
            while not self._stopping.is_set():
                patient_id = rng.choice(self._patient_ids)
                body = {**SETS[rng.choice(list(SETS))], "measured_at": self._next_time().isoformat()}
                self._send(client, patient_id, body, str(uuid.uuid4()))

    def _send(self, client: httpx.Client, patient_id: str, body: dict, key: str) -> None:
        """The same request until a final answer; a 4xx or 500 is final (and a failure of the test)."""
        while True:
            try:
                response = client.post(
                    f"/api/v1/patient/{patient_id}/measurements", json=body, headers={"Idempotency-Key": key}
                )
                status: int | str = response.status_code
            except httpx.TransportError as exc:
                response, status = None, type(exc).__name__
            self.writes.count(status)
            if response is not None and status == 201:
                with self.writes.lock:
                    self.writes.acknowledged[response.json()["id"]] = patient_id
                return
            if response is not None and status not in RETRIED:
                return
            if self._stopping.is_set() and time.monotonic() - self._stopped_at > self._grace_s:
                with self.writes.lock:
                    self.writes.given_up += 1
                return
            time.sleep(0.2)
