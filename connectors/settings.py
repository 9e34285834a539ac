"""Settings dataclass fields that carry their own documentation and bounds.

Each field of a settings dataclass (``BridgeConfig``, ``RestConfig``, ``DrainConfig``) says what it
means and what it allows; the job's command line builds its options from these fields, so each
default, explanation and bound is written once, here in the code that uses it.
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")


def setting(
    default: T,
    help: str,
    *,
    metavar: str | None = None,
    choices: tuple[T, ...] | None = None,
    minimum: float | None = None,
    positive: bool = False,
) -> T:
    """A dataclass field with a default and its one-line help. ``metavar``: the value's name on the
    command line; ``choices``: the only values allowed; ``minimum``: the smallest allowed;
    ``positive``: above zero."""
    return field(
        default=default,
        metadata={
            "help": help,
            "metavar": metavar,
            "choices": choices,
            "minimum": minimum,
            "positive": positive,
        },
    )


def check_settings(settings: DataclassInstance) -> None:
    """Raises ValueError naming the first field whose value its bounds refuse."""
    for f in fields(settings):
        value, meta = getattr(settings, f.name), f.metadata
        if value is None or not meta:
            continue
        if meta["choices"] is not None and value not in meta["choices"]:
            raise ValueError(
                f"{f.name} must be one of {', '.join(map(str, meta['choices']))}, not {value!r}"
            )
        if meta["minimum"] is not None and value < meta["minimum"]:
            raise ValueError(f"{f.name} must be at least {meta['minimum']:g}, not {value:g}")
        if meta["positive"] and not value > 0:
            raise ValueError(f"{f.name} must be above 0, not {value:g}")


def check_url(url: str, schemes: tuple[str, ...], name: str) -> None:
    """Raises ValueError unless ``url`` has one of ``schemes`` and a host."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise ValueError(f"{name} {url!r} is not a URL: {exc}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{name} {url!r} must be {' or '.join(s + '://host' for s in schemes)}")
