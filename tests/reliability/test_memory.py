"""Unauthenticated clients cannot make the server hold memory: request bodies are refused
before they are read, and an agent connection takes no more than a hello's size before its
key is checked. Measured on a real server process's resident memory."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from typing import Callable

import pytest

from e2e.server_process import ServerProcess
from peephole import protocol

pytestmark = [pytest.mark.server, pytest.mark.slow]

MIB = 1024 * 1024
BODIES = 3  # as in the report: three 200 MiB bodies took the server from 210 MiB to 1.3 GB
BODY = 200 * MIB
SOCKETS = 40  # and 40 connections with 15 MiB first frames took it to 1.5 GB
FRAME = 15 * MIB
ALLOWED_GROWTH = 60 * MIB
CHUNK = b"x" * (64 * 1024)
# Seconds the senders keep trying: a bound that only catches a server that neither refuses
# nor reads (each sender says whether it got that far; refusing normally takes well under 1 s).
HANG = 300.0

Sent = tuple[int, bool]  # bytes sent, and whether the sender gave up at the deadline


def send_all(sock: socket.socket, size: int, deadline: float) -> Sent:
    """Send ``size`` bytes until done, refused or past ``deadline``."""
    sent = 0
    try:
        while sent < size:
            if time.monotonic() > deadline:
                return sent, True
            sent += sock.send(CHUNK[: size - sent])
    except OSError:  # the server answered and closed: the point
        pass
    return sent, False


def post_body(port: int, deadline: float) -> Sent:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /api/v1/probes HTTP/1.1\r\nHost: x\r\nContent-Type: "
            f"application/json\r\nContent-Length: {BODY}\r\n\r\n".encode()
        )
        return send_all(sock, BODY, deadline)


def agent_frame(port: int, deadline: float) -> Sent:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET {protocol.AGENT_PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 101"), answer
        # A text frame announcing 15 MiB (masked with a zero key), then its payload.
        sock.sendall(bytes([0x81, 0x80 | 127]) + FRAME.to_bytes(8, "big") + bytes(4))
        return send_all(sock, FRAME, deadline)


def peak_rss_during(
    server: ServerProcess, work: list[Callable[[], Sent]]
) -> tuple[int, list[Sent]]:
    """Run ``work`` at once; the server's highest resident memory meanwhile, what was sent."""
    peak = server.rss_bytes()
    sent: list[Sent] = []
    threads = [threading.Thread(target=lambda w=w: sent.append(w())) for w in work]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + HANG + 60  # the senders give up after HANG
    while any(t.is_alive() for t in threads):
        assert time.monotonic() < deadline, "the senders never finished"
        peak = max(peak, server.rss_bytes())
        time.sleep(0.02)
    return max(peak, server.rss_bytes()), sent


def test_unauthenticated_bodies_and_frames_cost_no_memory(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()
    deadline = time.monotonic() + HANG
    base = server.rss_bytes()
    peak, outcomes = peak_rss_during(
        server,
        [lambda: post_body(server.port, deadline)] * BODIES
        + [lambda: agent_frame(server.port, deadline)] * SOCKETS,
    )
    growth = peak - base
    sent = sum(size for size, _ in outcomes)
    print(
        f"\nRSS {base / MIB:.0f} MiB -> peak {peak / MIB:.0f} MiB while {sent / MIB:.0f} MiB "
        f"were offered by {BODIES} bodies and {SOCKETS} first frames"
    )
    assert growth < ALLOWED_GROWTH, f"the server grew by {growth / MIB:.0f} MiB"
    assert server.process is not None and server.process.poll() is None
    assert not any(gave_up for _, gave_up in outcomes), "the server neither refused nor read"
