"""A reader of server-sent events for the tests: the stream is read on a thread of its own, each
event put on a queue, so that a test waits for the next one with a deadline."""

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    data: dict[str, Any]


@dataclass
class EventStream:
    """`GET url` as a browser's event source would read it; `comments` counts heartbeats."""

    base_url: str
    url: str
    headers: dict[str, str]
    events: "queue.Queue[Event]" = field(default_factory=queue.Queue)
    comments: int = 0
    status: int | None = None
    content_type: str = ""
    _opened: threading.Event = field(default_factory=threading.Event)
    _client: httpx.Client | None = None

    def __enter__(self) -> "EventStream":
        self._client = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(10, read=60))
        threading.Thread(target=self._read, daemon=True).start()
        assert self._opened.wait(10), "the stream did not answer"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._client is not None
        self._client.close()  # ends the read on the thread

    def _read(self) -> None:
        assert self._client is not None
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as response:
                self.status, self.content_type = response.status_code, response.headers.get("content-type", "")
                self._opened.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.comments += 1
                    elif line:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                    elif "data" in fields:
                        self.events.put(
                            Event(fields.get("id", ""), fields.get("event", ""), json.loads(fields["data"]))
                        )
                        fields = {}
                    else:
                        fields = {}
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by __exit__
        finally:
            self._opened.set()

    def next(self, timeout: float = 2.0) -> Event:
        """The next event, within `timeout` seconds."""
        return self.events.get(timeout=timeout)

    def until(self, wanted: Any, timeout: float = 2.0) -> Event:
        """The first event `wanted(event)` holds for, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if wanted(event):
                return event
