"""A TCP proxy a test puts between one process and RabbitMQ (or PostgreSQL), to freeze, cut or
take down that link at will.

Freezing one direction holds its bytes in the proxy: freeze broker->client and a publisher's
confirms never arrive; freeze client->broker and a consumer's acks never leave. Down drops every
connection and refuses new ones, as a server that stopped would, until `up`.
"""

import contextlib
import socket
import threading


class Proxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._to_broker = threading.Event()
        self._to_client = threading.Event()
        self._to_broker.set()
        self._to_client.set()
        self._serving = threading.Event()
        self._serving.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze_to_client(self) -> None:
        self._to_client.clear()

    def freeze_to_broker(self) -> None:
        self._to_broker.clear()

    def cut(self) -> None:
        """Drop every connection (the broker sees the client vanish), then flow freely again."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._to_broker.set()
        self._to_client.set()

    def down(self) -> None:
        self._serving.clear()
        self.cut()

    def up(self) -> None:
        self._serving.set()

    def close(self) -> None:
        self.cut()
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            if not self._serving.is_set():
                client.close()
                continue
            try:
                broker = socket.create_connection(self._target)
            except OSError:  # broker down: the client sees a refused handshake, as without us
                client.close()
                continue
            with self._lock:
                self._sockets += [client, broker]
            threading.Thread(target=self._pump, args=(client, broker, self._to_broker), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, self._to_client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, flowing: threading.Event) -> None:
        try:
            while data := source.recv(65536):
                flowing.wait()  # frozen: hold the bytes here
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
