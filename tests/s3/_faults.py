"""A fault-injecting HTTP/1.1 proxy: forwards requests to an S3 server and can swallow the
response of chosen requests after the server has processed them (a "lost response")."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Exchange:
    method: str
    target: str
    headers: dict[str, str]
    status: int | None = None
    dropped: bool = False


type DropRule = Callable[[Exchange], bool]


def _read_head(sock: socket.socket, buf: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end])
    del buf[:end]
    return head


def _read_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed mid-body")
        buf += chunk
    data = bytes(buf[:n])
    del buf[:n]
    return data


def _read_chunked(sock: socket.socket, buf: bytearray) -> bytes:
    out = bytearray()
    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("peer closed mid-body")
            buf += chunk
        line_end = buf.index(b"\r\n") + 2
        size = int(bytes(buf[: line_end - 2]).split(b";")[0], 16)
        out += _read_exact(sock, buf, line_end)
        out += _read_exact(sock, buf, size + 2)
        if size == 0:
            return bytes(out)


def _parse(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _body(sock: socket.socket, buf: bytearray, headers: dict[str, str], none: bool) -> bytes:
    if none:
        return b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return _read_chunked(sock, buf)
    return _read_exact(sock, buf, int(headers.get("content-length", "0")))


@dataclass
class LossyProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``; drop responses for which ``rule`` is true."""

    upstream: tuple[str, int]
    rule: DropRule
    exchanges: list[Exchange] = field(default_factory=list)
    max_in_flight: int = 0
    _in_flight: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        for t in self._threads:
            t.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        cbuf, ubuf = bytearray(), bytearray()
        client.settimeout(30)
        upstream.settimeout(30)
        try:
            while not self._stop.is_set():
                head = _read_head(client, cbuf)
                if head is None:
                    return
                request_line, headers = _parse(head)
                method, target = request_line.split(" ")[:2]
                body = _body(client, cbuf, headers, none=False)
                with self._lock:
                    self._in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self._in_flight)
                try:
                    upstream.sendall(head + body)
                    rhead = _read_head(upstream, ubuf)
                    if rhead is None:
                        return
                    status_line, rheaders = _parse(rhead)
                    status = int(status_line.split(" ")[1])
                    no_body = method == "HEAD" or status in (204, 304) or status < 200
                    rbody = _body(upstream, ubuf, rheaders, none=no_body)
                finally:
                    with self._lock:
                        self._in_flight -= 1
                exchange = Exchange(method, target, headers, status)
                with self._lock:
                    exchange.dropped = self.rule(exchange)
                    self.exchanges.append(exchange)
                if exchange.dropped:
                    return  # the server applied the request; the client never hears of it
                client.sendall(rhead + rbody)
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
            upstream.close()


def drop_first(method: str, key_suffix: str) -> DropRule:
    """A rule dropping the response of the first ``method`` request for a key."""
    state = {"left": 1}

    def rule(ex: Exchange) -> bool:
        if ex.method == method and ex.target.split("?")[0].endswith(key_suffix) and state["left"]:
            state["left"] -= 1
            return True
        return False

    return rule


def never(ex: Exchange) -> bool:
    return False


def drop_first_conditional_put(key_suffix: str, count: int = 1) -> DropRule:
    """A rule dropping the responses of the first ``count`` successful conditional PUTs."""
    state = {"left": count}

    def rule(ex: Exchange) -> bool:
        conditional = "if-none-match" in ex.headers or "if-match" in ex.headers
        hit = ex.method == "PUT" and conditional and ex.target.split("?")[0].endswith(key_suffix)
        if hit and ex.status == 200 and state["left"] > 0:
            state["left"] -= 1
            return True
        return False

    return rule
