"""Hostile HTTP peers on loopback for the outbound and body tests: a server that answers 200 and then trickles its
body a byte at a time, a gzip bomb, and a listener that only counts who connected."""

from __future__ import annotations

import gzip
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import Self

from tests.support import free_port


@dataclass
class Peer:
    """A threaded TCP server on 127.0.0.1 whose every connection is handled by `serve(conn)`."""

    port: int = field(default_factory=free_port)
    connections: int = 0
    _server: socketserver.ThreadingTCPServer | None = None

    def serve(self, conn: socket.socket) -> None:  # overridden
        del conn

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/media"

    def start(self) -> Self:
        peer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                peer.connections += 1
                try:
                    peer.serve(self.request)
                except OSError:
                    pass  # the client went away: what these peers are for

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        socketserver.ThreadingTCPServer.daemon_threads = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _read_head(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk


@dataclass
class Trickle(Peer):
    """Answers 200 with a large declared body, then sends one byte every `every_s` for up to `for_s`."""

    every_s: float = 0.25
    for_s: float = 60.0

    def serve(self, conn: socket.socket) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
        ends = time.monotonic() + self.for_s
        while time.monotonic() < ends:
            conn.sendall(b"x")
            time.sleep(self.every_s)


@dataclass
class GzipBomb(Peer):
    """Answers 200 with Content-Encoding: gzip: `inflated` zero bytes squeezed into a small body."""

    inflated: int = 256 * 1024 * 1024
    sent: int = 0

    def serve(self, conn: socket.socket) -> None:
        _read_head(conn)
        body = gzip.compress(b"\0" * self.inflated, compresslevel=9)
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
        conn.sendall(head.encode())
        conn.sendall(body)
        self.sent = len(body)
