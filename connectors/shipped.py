"""Files the project ships beside its packages, conf/ and data/captures/: in a clone or an editable
install they are in the repo; an installed wheel puts them under <prefix>/share/binance-flink
(pyproject.toml's data-files)."""

from __future__ import annotations

import site
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_INSTALLED = [
    Path(prefix) / "share" / "binance-flink" for prefix in (sys.prefix, site.getuserbase())
]


def shipped(relative: str) -> Path:
    """The shipped file or folder ``relative`` (e.g. ``"conf/config.yaml"``); where a clone keeps
    it when it is nowhere, so that the error that follows names a useful path."""
    for root in (_REPO, *_INSTALLED):
        if (root / relative).exists():
            return root / relative
    return _REPO / relative
