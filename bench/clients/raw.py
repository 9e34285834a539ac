"""The load server alone: a raw socket that does the handshake and discards every byte.

It shows what the server can deliver, so that a client's figure is known to be the client's."""

from __future__ import annotations

import base64
import os
import socket
import time
from urllib.parse import urlsplit

from bench.clients.meter import arguments, report


def main() -> None:
    args = arguments(__doc__)
    url = urlsplit(args.url)
    sock = socket.create_connection((url.hostname, url.port))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /ws/%s@trade HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (args.symbol.encode(), url.netloc.encode(), key)
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    head, _, body = response.partition(b"\r\n\r\n")
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    messages, total = int(headers[b"X-Bench-Messages"]), int(headers[b"X-Bench-Bytes"])
    buf = bytearray(1 << 22)
    received = len(body)
    start, cpu = time.perf_counter(), time.process_time()
    while received < total:
        n = sock.recv_into(buf)
        if not n:
            raise ConnectionError(f"server closed after {received} of {total} bytes")
        received += n
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    sock.close()
    report(
        {
            "client": "raw",
            "messages": messages,
            "bytes": total,
            "seconds": round(wall, 4),
            "msgs_per_s": round(messages / wall),
            "mbytes_per_s": round(total / wall / 1e6),
            "cpu_s": round(cpu, 4),
            "cpu_s_per_million": round(cpu / messages * 1e6, 3),
        }
    )


if __name__ == "__main__":
    main()
