"""Rebuild the trades-only extracts in this folder from the full captures they are cut from.

Each extract keeps, byte for byte and in file order, the ``@trade`` / ``@aggTrade`` lines of one
capture (and the cryptofeed file's header line, which its reader expects), gzip-compressed with
a fixed header so that the output is reproducible. Depth, bookTicker, kline and REST lines are
dropped. The sources are checked against their recorded git blob ids first:

    python data/captures/extract.py --source DIR

``DIR`` holds the full captures (see README.md for where they come from).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
# source file -> (its git blob id, the extract's name)
SOURCES = {
    "btcusdt_20230405.dat.gz": (
        "87c736566d11912673f81f8b1ff073bc4fe5e900",
        "btcusdt_20230405.dat.gz",
    ),
    "btcusdt_20240808.gz": ("68bfc259f4e89c3d75238e3d7eb0501e49068084", "btcusdt_20240808.gz"),
    "btcusdt_20240809.gz": ("32e0413b24b49f3ab3d0bdb2b210b603bb7df567", "btcusdt_20240809.gz"),
    "ethusdt_20240808.gz": ("ca6ab4da3405cd646f9a6ffb6c2fd73a04133c37", "ethusdt_20240808.gz"),
    "ethusdt_20240809.gz": ("63e758f9402365777e1a77513c8804c621b3ff1b", "ethusdt_20240809.gz"),
    "cryptofeed_BINANCE-ee25be.0": (
        "8980a803e28cc9566c61890ca28ef2ac5383a702",
        "cryptofeed_BINANCE-ee25be.0.gz",
    ),
}
# hftbacktest: "<time> {...}"; cryptofeed: "<time>: {...}", after a "wss://..." header line.
_TRADE_LINE = re.compile(rb'^[0-9.]+:? \{"stream":"[a-z0-9]+@(?:trade|aggTrade)"')
_HEADER_LINE = re.compile(rb"^wss://")


def kept_lines(path: Path) -> list[bytes]:
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as lines:
        return [line for line in lines if _TRADE_LINE.match(line) or _HEADER_LINE.match(line)]


def git_blob_id(path: Path) -> str:
    content = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, required=True, help="folder holding the full captures"
    )
    source = parser.parse_args().source
    for name, (blob, extract) in SOURCES.items():
        if git_blob_id(source / name) != blob:
            raise SystemExit(f"{source / name} is not the recorded capture (git blob {blob})")
        lines = kept_lines(source / name)
        output = HERE / extract
        with (
            output.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out,
        ):
            out.writelines(lines)
        print(f"{output.name}: {len(lines)} lines, {output.stat().st_size} bytes")


if __name__ == "__main__":
    main()
