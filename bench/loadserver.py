"""The load: a WebSocket server on raw sockets, run as its own process so that it never shares a
GIL (or a core's time slice) with the client being measured.

    python -m bench.loadserver flood --count N [--symbol BTCUSDT --symbol ETHUSDT]
        every connection gets the same N pre-built frames of the symbol its path names (the first
        symbol by default), written in ~1 MiB batches as fast as the reader takes them; then
        silence until the client leaves. Pre-built, so that sending costs the server next to no
        CPU during a measurement (generating a frame costs ~1 us of Python: at 100,000 trades/s a
        tenth of one of the two cores the job runs on, and not of its FileSource twin's)
    python -m bench.loadserver paced --phases 1000:5,10000:10,0:60 [--ping-interval 20]
        per connection, phases of RATE:SECONDS (rate 0 = pings only); ``E`` and ``T`` of every
        trade are its send time in ms, which the latency benchmark measures from

It prints one JSON line ``{"port": ..}`` once listening, and in paced mode a line at each phase's
start (``conn, phase, rate, start_ms``) and end (``conn, phase, sent, end_ms``), so the harness can
tell samples apart by ``E`` and knows how many trades each phase sent. In flood mode, per
connection: ``conn, symbol, count, connected_at`` after the handshake, ``conn, sent, ran_out_at``
if it sends its last frame, ``conn, sent, ended_at`` when the client leaves (``sent``: frames
handed to the socket; ``*_at``: ``time.monotonic()``, the system-wide clock the harness reads too),
so the harness can tell whether an input lasted through a window.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time

from bench.data import REPO, Trades

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_BATCH_BYTES = 1 << 20
_OP_TEXT, _OP_CLOSE, _OP_PING = 0x1, 0x8, 0x9
_print_lock = threading.Lock()


def frame(payload: bytes, opcode: int = _OP_TEXT) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def announce(**fields) -> None:
    with _print_lock:
        print(json.dumps(fields), flush=True)


def read_upgrade(sock: socket.socket) -> tuple[bytes, str]:
    """The client's WebSocket key and request path."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(4096)
        if not chunk or len(request) > 65536:
            raise ConnectionError("no WebSocket handshake")
        request += chunk
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    return key, request.split(b" ", 2)[1].decode()


def handshake(sock: socket.socket, key: bytes, extra_headers: dict) -> None:
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    # No Sec-WebSocket-Extensions in the answer: every client falls back to uncompressed frames.
    headers = b"".join(
        b"%s: %s\r\n" % (k.encode(), str(v).encode()) for k, v in extra_headers.items()
    )
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n" + headers + b"\r\n"
    )


class Peer:
    """One client: the sender writes whole frames under ``lock``; a watcher thread reads the
    client's frames (pongs, close) so that a close is echoed between two batches, never inside
    one."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.lock = threading.Lock()
        self.gone = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def send(self, data) -> bool:
        with self.lock:
            if self.gone.is_set():
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self.gone.set()
                return False

    def _watch(self) -> None:
        buf = b""
        try:
            while not self.gone.is_set():
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                # Client frames are masked and tiny; only a close matters.
                while len(buf) >= 2:
                    length, header = buf[1] & 0x7F, 6
                    if length == 126:
                        length, header = int.from_bytes(buf[2:4], "big"), 8
                    elif length == 127:
                        length, header = int.from_bytes(buf[2:10], "big"), 14
                    if len(buf) < header + length:
                        break
                    if buf[0] & 0x0F == _OP_CLOSE:
                        # The sender may be stuck in a batch to a client that stopped reading:
                        # echo the close only if the socket is free, then hang up either way.
                        if self.lock.acquire(blocking=False):
                            try:
                                self.sock.sendall(frame(b"\x03\xe8", _OP_CLOSE))
                            finally:
                                self.lock.release()
                        return
                    buf = buf[header + length :]
        except OSError:
            pass
        finally:
            self.gone.set()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


def flood_batches(trades: Trades, count: int) -> tuple[list[tuple[bytes, int]], int]:
    """The first ``count`` frames of ``trades`` joined into ~1 MiB batches that end on frame
    boundaries, each with its number of frames, and their total size. Built batch by batch: the
    frames are never all held twice."""
    heads: dict[int, bytes] = {}
    out: list[tuple[bytes, int]] = []
    current: list[bytes] = []
    size = total = 0
    for payload in map(trades.payload, range(count)):
        head = heads.get(len(payload))
        if head is None:
            head = heads[len(payload)] = frame(payload)[: -len(payload)]
        current += (head, payload)
        size += len(head) + len(payload)
        if size >= _BATCH_BYTES:
            out.append((b"".join(current), len(current) // 2))
            total += size
            current, size = [], 0
    if current:
        out.append((b"".join(current), len(current) // 2))
        total += size
    return out, total


def serve_flood(
    sock: socket.socket,
    conn: int,
    loads: dict[str, tuple[list[tuple[bytes, int]], int]],
    count: int,
) -> None:
    key, path = read_upgrade(sock)
    symbol = next((s for s in loads if f"/{s.lower()}@" in path), next(iter(loads)))
    load, total_bytes = loads[symbol]
    handshake(sock, key, {"X-Bench-Messages": count, "X-Bench-Bytes": total_bytes})
    peer = Peer(sock)
    announce(conn=conn, symbol=symbol, count=count, connected_at=time.monotonic())
    sent = 0
    try:
        for batch, frames in load:
            if not peer.send(batch):
                return
            sent += frames
        announce(conn=conn, sent=sent, ran_out_at=time.monotonic())
        peer.gone.wait()
    finally:
        announce(conn=conn, sent=sent, ended_at=time.monotonic())


def serve_paced(
    sock: socket.socket,
    conn: int,
    trades: Trades,
    phases: list[tuple[int, float]],
    ping_interval: float,
) -> None:
    handshake(sock, read_upgrade(sock)[0], {})
    peer = Peer(sock)
    n = 0
    next_ping = time.monotonic() + ping_interval
    for index, (rate, seconds) in enumerate([*phases, (0, float("inf"))]):
        start = time.monotonic()
        announce(conn=conn, phase=index, rate=rate, start_ms=time.time() * 1000)
        sent = 0
        while not peer.gone.is_set():
            now = time.monotonic()
            if now - start >= seconds:
                break
            if now >= next_ping:
                peer.send(frame(b"bench", _OP_PING))
                next_ping = now + ping_interval
            due = int((now - start) * rate) - sent
            if due > 0:
                now_ms = time.time_ns() // 1_000_000
                peer.send(b"".join(frame(trades.payload(n + i, now_ms)) for i in range(due)))
                n += due
                sent += due
            # 1 ms ticks keep a 10k msg/s phase within ~10 trades of its schedule at any moment.
            peer.gone.wait(0.001 if rate else min(0.05, max(0.0, next_ping - now)))
        announce(conn=conn, phase=index, sent=sent, end_ms=time.time() * 1000)
        if peer.gone.is_set():
            return


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadserver")
    p.add_argument("mode", choices=("flood", "paced"))
    p.add_argument("--count", type=int, default=1_000_000, help="flood: frames per connection")
    p.add_argument("--phases", default="1000:10", help="paced: RATE:SECONDS,...")
    p.add_argument(
        "--ping-interval", type=float, default=20.0, help="paced: Binance pings every 20 s"
    )
    p.add_argument("--symbol", action="append", help="repeatable (flood); default BTCUSDT")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)

    symbols = args.symbol or ["BTCUSDT"]
    if args.mode == "flood":
        loads = {symbol: flood_batches(Trades(symbol), args.count) for symbol in symbols}
        work = (loads, args.count)
        target = serve_flood
    else:
        phases = [
            (int(r), float(s)) for r, s in (item.split(":") for item in args.phases.split(","))
        ]
        work = (Trades(symbols[0]), phases, args.ping_interval)
        target = serve_paced

    listener = socket.create_server(("127.0.0.1", args.port), backlog=16)
    announce(port=listener.getsockname()[1], mode=args.mode, count=args.count, symbols=symbols)
    conn = 0
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn += 1
        threading.Thread(target=_serve, args=(target, sock, conn, work), daemon=True).start()


def _serve(target, sock, conn, work) -> None:
    try:
        target(sock, conn, *work)
    except (OSError, ConnectionError) as exc:
        print(f"connection {conn}: {exc!r}", file=sys.stderr, flush=True)
    finally:
        sock.close()


class LoadServer:
    """The server as a child process: ``url``, and ``events`` (its phase lines) as they come."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadserver", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = json.loads(self.proc.stdout.readline() or "null")
        if not ready:
            raise RuntimeError(f"load server {args} did not start (exit {self.proc.wait()})")
        self.url = f"ws://127.0.0.1:{ready['port']}"
        self.events: list[dict] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def wait_for(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((e for e in self.events if predicate(e)), None)
            if found:
                return found
            time.sleep(0.05)
        raise TimeoutError(
            f"load server: no such event within {timeout:g}s; got {self.events[-5:]}"
        )

    def connections(self, since: float, ended_within: float = 0.0) -> list[dict]:
        """Flood mode: the connections opened at or after ``time.monotonic()`` ``since``, each its
        events merged (``symbol, count, connected_at``, then ``sent`` and ``ran_out_at`` and/or
        ``ended_at`` once known), in the order opened. ``ended_within``: seconds to wait for every
        one of them to have ended (the client was just stopped), else whatever is known by then."""
        deadline = time.monotonic() + ended_within
        while True:
            merged: dict[int, dict] = {}
            for e in list(self.events):
                if "connected_at" in e and e["connected_at"] >= since:
                    merged[e["conn"]] = dict(e)
                elif e.get("conn") in merged:
                    merged[e["conn"]].update(e)
            found = [merged[c] for c in sorted(merged)]
            if all("ended_at" in c for c in found) or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()

    def __enter__(self) -> LoadServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    main()
