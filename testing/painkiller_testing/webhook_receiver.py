"""A webhook receiver on loopback, standing in for a nurse-call system in the tests."""

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float  # time.time() when the request arrived
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    delay_s: float = 0.0  # wait this long before answering (a slow or hanging receiver)
    trickle_s: float = 0.0  # send the answer a byte at a time, this far apart (one that never quite answers)


class WebhookReceiver:
    """An HTTP server on loopback, standing in for a nurse-call system: it records every POST and
    answers each with the next of `answers` (200 once they run out)."""

    def __init__(self, port: int = 0, answers: Sequence[Answer] = ()) -> None:
        self.received: list[Received] = []
        self._answers = list(answers)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.received.append(
                        Received(time.time(), {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    answer = receiver._answers.pop(0) if receiver._answers else Answer()
                time.sleep(answer.delay_s)
                if answer.trickle_s:
                    self._trickle(
                        f"HTTP/1.1 {answer.status} OK\r\ncontent-length: 0\r\n\r\n".encode(), answer.trickle_s
                    )
                    return
                self.send_response(answer.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _trickle(self, answer: bytes, every_s: float) -> None:
                self.close_connection = True
                for byte in answer:
                    time.sleep(every_s)
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the sender gave up
                        return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/painkiller"

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
