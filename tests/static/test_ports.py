"""The ports the test stacks and the bench listen on: never one the kernel may hand to an outgoing
connection in the seconds before the stack binds it (scripts/stack.py, `free_port`)."""

import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import stack  # noqa: E402


def ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_an_outgoing_connection_keeps_a_server_from_binding_its_port() -> None:
    # The premise: a connection's local port (while open, and in TIME_WAIT for a minute after)
    # makes a listener's bind fail even with SO_REUSEADDR, and each PostgreSQL or RabbitMQ
    # connection a starting stack opens takes such a port from the ephemeral range.
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with socket.create_connection(listener.getsockname()) as client:
            port = client.getsockname()[1]
            try:
                server.bind(("127.0.0.1", port))
                bound = True
            except OSError:
                bound = False
    assert port in ephemeral_range()
    assert not bound


def test_free_ports_are_outside_the_ephemeral_range_distinct_and_bindable() -> None:
    ports = [stack.free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert not [port for port in ports if port in ephemeral_range()]
    for port in ports[:5]:
        with socket.create_server(("127.0.0.1", port)):
            pass
