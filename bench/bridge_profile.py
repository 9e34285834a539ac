"""Where the bridge spends its CPU: the bridge client under py-spy (a sampling profiler, so the
shares are not distorted by instrumenting every call).

The bridge is bound by the GIL (one core at most), so only the thread holding the GIL is sampled
(``--gil``): a thread waiting for the GIL is not working. Start-up imports are left out. Shares are
of the samples kept: ``self`` is time in the function itself (or in C code it called directly,
e.g. ``orjson.loads``, ``socket.recv``), ``total`` includes what it called.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.data import REPO

_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")


def available() -> bool:
    return _py_spy() is not None


def profile_bridge(url: str, count: int, seconds: float, work: Path, top: int = 15) -> dict:
    raw = work / "bridge-profile.txt"
    command = [
        _py_spy(),
        "record",
        "--gil",
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(raw),
        "--",
        sys.executable,
        "-m",
        "bench.clients.bridge",
        "--url",
        url,
        "--count",
        str(count),
        "--seconds",
        str(seconds),
    ]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    own, total, lines, samples = Counter(), Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if "importlib._bootstrap" in stack:
            continue
        n = int(n)
        frames = stack.split(";")
        functions = [_name(f, with_line=False) for f in frames]
        samples += n
        own[functions[-1]] += n
        lines[_name(frames[-1], with_line=True)] += n
        for function in set(functions):
            total[function] += n
    share = lambda k: round(100 * k / samples, 1)  # noqa: E731
    return {
        "samples": samples,
        "functions": [
            {"function": f, "self_pct": share(own[f]), "total_pct": share(total[f])}
            for f, _ in own.most_common(top)
        ],
        "lines": [{"line": f, "self_pct": share(n)} for f, n in lines.most_common(top)],
    }


def _name(frame: str, with_line: bool) -> str:
    """``parse (/…/connectors/binance/parser.py:120)`` -> ``parse (connectors/binance/parser.py)``
    (or ``…parser.py:120``), site-packages and the repo trimmed from the path."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["path"]
    for prefix in (str(REPO) + "/", "site-packages/"):
        if prefix in path:
            path = path.split(prefix, 1)[1]
    line = f":{match['line']}" if with_line and match["line"] else ""
    return f"{match['function']} ({path}{line})"


def _py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")
