"""What the simulator's whole market costs its own process: CPU seconds per million published
trades, with the market generating at a rate and readers subscribed to every symbol, as
``bench/wholemarket.py`` runs it beside the job (``python -m connectors.simulator --market-symbols
1500 --rate R --live``; 1,500 symbols over 8 combined-stream connections, as the job plans them).

    python bench/simulator_cpu.py --rate 20000 --connections 8 --rounds 3 --baseline REV

With ``--baseline REV`` the same measurement runs, round by round in turn, on that commit's
simulator too (``git archive`` into a temporary folder, the same Python), so that the two figures
come from the same minutes of the same machine; "current" is this working tree's. The readers (one
process of raw sockets that only parse frame headers and answer pings) run beside it and count the
trades delivered. One connection cannot carry the whole market (1,024 streams at most, as on
Binance): 8 is the job's plan, 16 doubles the writes. The warm-up (40 s by default) lets the REST
history grow towards its steady size (60-120 s of trades), as it has by the time the job beside it
has started in bench/wholemarket.py.

Per round: ``published_per_s`` (the 24 h ticker's ``count`` summed, before and after the window),
``delivered_per_s`` (trade frames the readers got), ``cpu_s_per_million`` (the simulator
process's user + system CPU over the window, per million published), ``cores`` (the same CPU per
second of the window).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench.cluster import free_port, get_text
from bench.data import REPO

SYMBOLS = 1500
SEED = 21  # bench/wholemarket.py's
_OP_PING, _OP_PONG = 0x9, 0xA


def measure(
    repo: Path, rate: int, connections: int, warmup: float, window: float, log: Path
) -> dict:
    """One simulator of ``repo``'s code, ``connections`` readers, one window."""
    port = free_port()
    with open(log, "wb") as out:
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connectors.simulator",
                *("--market-symbols", str(SYMBOLS), "--rate", str(rate)),
                *("--seed", str(SEED), "--live", "--port", str(port)),
            ],
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    reader = None
    try:
        deadline = time.monotonic() + 60
        while b"Ctrl-C to stop" not in log.read_bytes():
            if sim.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start; see {log}")
            time.sleep(0.1)
        http = f"http://127.0.0.1:{port}"
        info = orjson.loads(get_text(f"{http}/api/v3/exchangeInfo"))
        symbols = [s["symbol"] for s in info["symbols"]]
        reader = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "read",
                "--port",
                str(port),
                "--connections",
                str(connections),
                "--seconds",
                str(warmup + window + 2),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert reader.stdin is not None
        reader.stdin.write("\n".join(symbols).encode() + b"\n")
        reader.stdin.close()
        time.sleep(warmup)
        proc = psutil.Process(sim.pid)
        cpu0, count0, t0 = _cpu(proc), _published(http), time.monotonic()
        time.sleep(window)
        cpu1, count1, t1 = _cpu(proc), _published(http), time.monotonic()
        assert reader.stdout is not None
        lines = reader.stdout.read()
        reader.wait(60)
    finally:
        if reader is not None and reader.poll() is None:
            reader.kill()
            reader.wait()
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
    seconds = t1 - t0
    published = count1 - count0
    delivered = _delivered(lines, t0, t1)
    return {
        "published_per_s": round(published / seconds),
        "delivered_per_s": round(delivered / seconds),
        "cpu_s_per_million": round((cpu1 - cpu0) / published * 1e6, 2),
        "cores": round((cpu1 - cpu0) / seconds, 3),
    }


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _published(http: str) -> int:
    return sum(entry["count"] for entry in orjson.loads(get_text(f"{http}/api/v3/ticker/24hr")))


def _delivered(lines: bytes, start: float, end: float) -> int:
    """Trades the readers counted between ``start`` and ``end`` (interpolated between the
    readings each side)."""
    points = [tuple(json.loads(line)) for line in lines.splitlines() if line.strip()]

    def at(t: float) -> float:
        before = max((p for p in points if p[0] <= t), default=points[0])
        after = min((p for p in points if p[0] >= t), default=points[-1])
        if after[0] == before[0]:
            return before[1]
        return before[1] + (after[1] - before[1]) * (t - before[0]) / (after[0] - before[0])

    return round(at(end) - at(start))


def read(port: int, connections: int, seconds: float, symbols: list[str]) -> None:
    """Subscribe ``connections`` combined-stream connections to every symbol's ``@trade``
    (round-robin, as the job splits them), count the trade frames, answer pings; print
    ``[monotonic, trades so far]`` every 0.25 s."""
    selector = selectors.DefaultSelector()
    groups = [symbols[i::connections] for i in range(connections)]
    for group in groups:
        sock = socket.create_connection(("127.0.0.1", port))
        streams = "/".join(f"{s.lower()}@trade" for s in group)
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET /stream?streams=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (streams.encode(), port, key)
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the simulator closed during the handshake")
            response += chunk
        head, _, rest = response.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.decode(errors="replace"))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [bytearray(rest)])
    trades, end, tick = 0, time.monotonic() + seconds, 0.0
    while (now := time.monotonic()) < end:
        if now >= tick:
            print(json.dumps([now, trades]), flush=True)
            tick = now + 0.25
        for key, _ in selector.select(0.05):
            sock, state = key.fileobj, key.data
            assert isinstance(sock, socket.socket)
            chunk = sock.recv(1 << 20)
            if not chunk:
                selector.unregister(sock)
                continue
            buf = state[0]
            buf += chunk
            trades += _frames(sock, buf)
    print(json.dumps([time.monotonic(), trades]), flush=True)


def _frames(sock: socket.socket, buf: bytearray) -> int:
    """Consume the whole frames at the start of ``buf`` (unmasked, from a server); the text
    frames among them."""
    pos, texts, size = 0, 0, len(buf)
    while size - pos >= 2:
        opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if size - pos < 4:
                break
            length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if size - pos < 10:
                break
            length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        if size - pos < head + length:
            break
        if opcode == 0x1:
            texts += 1
        elif opcode == _OP_PING:  # a pong, masked as a client's frames are
            payload = bytes(buf[pos + head : pos + head + length])
            sock.setblocking(True)
            sock.sendall(bytes((0x80 | _OP_PONG, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            sock.setblocking(False)
        pos += head + length
    del buf[:pos]
    return texts


def _baseline(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", rev, "connectors", "pyproject.toml"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir()
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("read", help="the readers (run by the benchmark)")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--connections", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    p.add_argument("--rate", type=int, default=20_000, help="trades/s in all (default 20000)")
    p.add_argument("--connections", type=int, default=8, help="readers' connections (default 8)")
    p.add_argument("--warmup", type=float, default=40.0)
    p.add_argument("--window", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--baseline", metavar="REV", help="also measure this commit's simulator")
    args = p.parse_args(argv)
    if args.command == "read":
        read(args.port, args.connections, args.seconds, sys.stdin.read().split())
        return
    with tempfile.TemporaryDirectory(prefix="simulator-cpu-") as scratch:
        paths = {"current": REPO}
        if args.baseline:
            paths = {args.baseline: _baseline(args.baseline, Path(scratch) / "base"), **paths}
        found: dict[str, list[dict]] = {name: [] for name in paths}
        for n in range(args.rounds):
            for name, path in paths.items():
                result = measure(
                    path,
                    args.rate,
                    args.connections,
                    args.warmup,
                    args.window,
                    Path(scratch) / f"sim-{n}.log",
                )
                found[name].append(result)
                print(json.dumps({"round": n, "code": name, **result}), flush=True)
        for name, results in found.items():
            summary = {key: statistics.median(r[key] for r in results) for key in results[0]}
            print(json.dumps({"code": name, "median_of": len(results), **summary}), flush=True)


if __name__ == "__main__":
    main()
