"""Rebuild ``trades_20240809.gz`` from the real captures it is cut from.

Keeps the ``btcusdt@trade`` and ``ethusdt@trade`` lines of the 2024-08-09 hftbacktest
captures whose trade time ``T`` is before 00:04:05 UTC, byte for byte, merged in receive
time order, gzip-compressed with a fixed header so the output is reproducible:

    python data/sample/make_sample.py [--source DIR]

``DIR`` defaults to ``$BINANCE_CAPTURES`` or ``../shared/data/binance`` beside the repo.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import heapq
import os
from collections.abc import Iterator
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "trades_20240809.gz"
# The sources' git blob ids, from the captures' README: the sample is cut from exactly these.
SOURCES = {
    "btcusdt_20240809.gz": "32e0413b24b49f3ab3d0bdb2b210b603bb7df567",
    "ethusdt_20240809.gz": "63e758f9402365777e1a77513c8804c621b3ff1b",
}
END_MS = 1723161845000  # 2024-08-09T00:04:05Z: bars up to 00:03 close, 5 s of 00:04 follow


def trade_lines(path: Path) -> list[tuple[int, bytes]]:
    stream = path.name.split("_")[0] + "@trade"
    prefix = b'{"stream":"%s",' % stream.encode()
    kept = []
    with gzip.open(path, "rb") as lines:
        for line in lines:
            recv_time, _, message = line.partition(b" ")
            if message.startswith(prefix) and orjson.loads(message)["data"]["T"] < END_MS:
                kept.append((int(recv_time), line))
    return kept


def sample_lines(source: Path) -> Iterator[bytes]:
    """The sample's lines in order, cut from the captures in ``source``."""
    for name, blob in SOURCES.items():
        if git_blob_id(source / name) != blob:
            raise SystemExit(f"{source / name} is not the recorded capture (git blob {blob})")
    # heapq.merge is stable across its inputs: on equal times BTCUSDT comes first.
    merged = heapq.merge(*(trade_lines(source / name) for name in SOURCES), key=lambda item: item[0])
    return (line for _, line in merged)


def git_blob_id(path: Path) -> str:
    content = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def main() -> None:
    default = os.environ.get("BINANCE_CAPTURES") or HERE.parents[2] / "shared" / "data" / "binance"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path(default))
    source = parser.parse_args().source
    count = 0
    with OUTPUT.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        for line in sample_lines(source):
            out.write(line)
            count += 1
    print(f"{OUTPUT}: {count} lines, {OUTPUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
