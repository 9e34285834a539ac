"""Errors the bridge hands to its consumer, each carrying the context needed to act on it."""

from __future__ import annotations

_QUERY_SHOWN = 60  # characters of a URL's query a message keeps


def short_url(url: str) -> str:
    """A URL as a message shows it: a long query (a combined stream names up to 1024 streams,
    some 20 KB) cut to its start and its length, so a line stays a line."""
    base, sep, query = url.partition("?")
    if not sep or len(query) <= _QUERY_SHOWN:
        return url
    return f"{base}?{query[:_QUERY_SHOWN]}...({len(query)} characters)"


class FeedError(Exception):
    """The feed cannot go on by itself; raising it lets the caller (a Flink job) restart."""

    @property
    def permanent(self) -> bool:
        """True when trying again cannot help (a restart would fail the same way)."""
        return False


# Handshake statuses that may pass: rate limits and bans end (429, 418), a WAF block may lift (403),
# a timeout is a timeout (408). Any other 4xx is the request itself: retrying cannot fix it.
_PASSING_4XX = (403, 408, 418, 429)


class ConnectFailed(FeedError):
    def __init__(
        self, url: str, cause: str, status: int | None = None, retry_after: float | None = None
    ):
        self.url, self.cause, self.status, self.retry_after = url, cause, status, retry_after
        detail = f"HTTP {status}" if status is not None else cause
        if retry_after is not None:
            detail += f", Retry-After {retry_after:g}s"
        super().__init__(f"cannot connect to {short_url(url)}: {detail}")

    @property
    def permanent(self) -> bool:
        return (
            self.status is not None and 400 <= self.status < 500 and self.status not in _PASSING_4XX
        )


class ReconnectsExhausted(FeedError):
    def __init__(self, url: str, attempts: int, last_cause: str):
        self.url, self.attempts, self.last_cause = url, attempts, last_cause
        super().__init__(
            f"gave up on {short_url(url)} after {attempts} reconnect attempts; last: {last_cause}"
        )


class BufferOverflow(FeedError):
    def __init__(self, capacity: int):
        self.capacity = capacity
        super().__init__(f"buffer full at {capacity} items and the overflow policy is 'fail'")


class ConnectionLost(Exception):
    """An established connection ended; the bridge reconnects (internal, never reaches the
    consumer)."""

    def __init__(self, cause: str, code: int | None = None, reason: str = ""):
        self.cause, self.code, self.reason = cause, code, reason
        detail = (
            cause
            if code is None
            else f"{cause} (close code {code}{' ' + reason if reason else ''})"
        )
        super().__init__(detail)


class SilenceTimeout(ConnectionLost):
    """No frame at all (not even a ping) for longer than the configured silence timeout."""
