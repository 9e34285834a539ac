"""A raw-socket WebSocket server for tests: it answers the upgrade, then writes exactly the bytes a
test gives it (pings, fragments, anything RFC 6455 allows or forbids) and records the client's
pongs. Written out here rather than taken from the code under test."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
import threading
import time

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WAIT = 10.0  # longest wait for a client


def encode(payload: bytes, opcode: int, fin: bool = True) -> bytes:
    """One unmasked server frame (RFC 6455 section 5.2)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n <= 125:
        head += bytes([n])
    elif n <= 0xFFFF:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


class ServerConnection:
    """One accepted client: answers the upgrade, then writes what it is given and records the
    client's pongs (its reader thread unmasks the client's frames)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.path: str | None = None
        self.pongs: list[bytes] = []
        self.closed = threading.Event()  # the client sent a close frame or went away
        self.ready = threading.Event()  # the upgrade was answered
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fuzz-ws-server-conn", daemon=True)
        self._thread.start()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5.0)
        self.sock.close()
        assert not self._thread.is_alive(), "server connection thread did not stop"

    def _recv(self) -> bytes:
        while not self._stopping:
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
        return b""

    def _run(self) -> None:
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = self._recv()
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            request, *lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)
            }
            self.path = request.split(" ")[1]
            accept = base64.b64encode(
                hashlib.sha1(headers["sec-websocket-key"].encode() + WS_GUID).digest()
            )
            self.sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.ready.set()
            self._read_frames(buf)
        except OSError:
            pass
        finally:
            self.closed.set()

    def _read_frames(self, buf: bytes) -> None:
        while True:
            while len(buf) >= 2:
                n, start = buf[1] & 0x7F, 2
                if n == 126:
                    n, start = (struct.unpack("!H", buf[2:4])[0], 4) if len(buf) >= 4 else (None, 0)
                elif n == 127:
                    n, start = (
                        (struct.unpack("!Q", buf[2:10])[0], 10) if len(buf) >= 10 else (None, 0)
                    )
                masked = buf[1] & 0x80
                if n is None or len(buf) < start + (4 if masked else 0) + n:
                    break
                key = buf[start : start + 4] if masked else b"\0\0\0\0"
                start += 4 if masked else 0
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(buf[start : start + n]))
                opcode, buf = buf[0] & 0x0F, buf[start + n :]
                if opcode == PONG:
                    self.pongs.append(payload)
                elif opcode == CLOSE:
                    return
            chunk = self._recv()
            if not chunk:
                return
            buf += chunk


class RawWebSocketServer:
    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections: list[ServerConnection] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="fuzz-ws-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(5.0)  # a client that stops reading fails the test, never hangs it
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )  # each write goes out at once
            with self._lock:
                if self._stopping:
                    sock.close()
                    return
                self.connections.append(ServerConnection(sock))

    def wait_for_client(self, path: str, known: int) -> ServerConnection:
        """The first connection after the ``known`` ones already seen, once upgraded, on
        ``path``."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with self._lock:
                fresh = self.connections[known:]
            for conn in fresh:
                if conn.ready.wait(0.01) and conn.path == path:
                    return conn
            time.sleep(0.005)
        raise AssertionError(f"no client connected on {path} within {WAIT}s")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._thread.join(5.0)
        self._listener.close()
        for conn in self.connections:
            conn.stop()
        assert not self._thread.is_alive(), "server accept thread did not stop"
