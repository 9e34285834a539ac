"""Where Prometheus reads the job's metrics: a loopback endpoint that Flink's JVMs push to.

Flink 2.3's Prometheus reporter takes a port and no host: it listens on every interface of every
JVM. Its push-gateway reporter instead sends the JVM's whole registry, every reporter interval, to a
URL of our choosing (``PUT /metrics/job/<job>``, text format 0.0.4). This server takes those pushes
and serves them merged on ``GET /metrics``, under the very names and labels the HTTP reporter
would have shown, so the scrape config, the alert rules and any dashboard stay as they were. It
listens on loopback unless told otherwise: the embedded run starts one in its own process, a
standalone cluster on one machine runs ``python -m job.metrics_gateway``, docker-compose runs it as
a service inside its network.

A JVM that dies without saying goodbye (SIGKILL, a lost TaskManager) leaves its last push behind:
what has not been pushed again for ``expire_after`` seconds is dropped, so a dead TaskManager's
gauges do not look alive.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families

DEFAULT_PORT = 9249  # Flink's Prometheus reporter's customary port: scrape configs keep working
PORTS_TRIED = 10  # the first free of DEFAULT_PORT.. (another run may hold the first)
PUSH_PATH = "/metrics/job/"

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address as a socket reports it, e.g. Java's
    ``::ffff:127.0.0.1`` or ``fe80::1%eth0``) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class _Pushes:
    """The latest push of each JVM (keyed by its push path), merged for a scrape.

    Thread contract: the server's handler threads call ``put``, ``delete`` and ``merged``
    concurrently; one lock guards the dict, and parsing happens outside it.
    """

    def __init__(self, expire_after: float):
        self._expire_after = expire_after
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, list[Metric]]] = {}

    def put(self, key: str, body: str) -> None:
        families = list(text_string_to_metric_families(body))  # a malformed push raises here
        with self._lock:
            self._latest[key] = (time.monotonic(), families)

    def delete(self, key: str) -> None:
        with self._lock:
            self._latest.pop(key, None)

    def merged(self) -> list[Metric]:
        """One family per name, with the samples of every JVM that pushed it (TaskManagers push
        the same names; their labels, tm_id and host, keep the samples apart)."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (at, _) in self._latest.items() if now - at > self._expire_after]:
                del self._latest[key]
            pushes = [families for _, families in self._latest.values()]
        by_name: dict[str, Metric] = {}
        for families in pushes:
            for family in families:
                into = by_name.get(family.name)
                if into is None:
                    into = by_name[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                into.samples.extend(family.samples)
        return list(by_name.values())


class _Registry:
    """What ``generate_latest`` reads: the merged pushes, and the metrics of this process's own
    ``collectors`` (called from the server's threads)."""

    def __init__(self, pushes: _Pushes, collectors: list[Callable[[], Iterable[Metric]]]):
        self._pushes = pushes
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        yield from self._pushes.merged()
        for collect in list(self._collectors):
            yield from collect()


class MetricsGateway:
    """The endpoint, served from a thread of its own: ``start()``, then ``url`` (where Flink's
    reporter pushes: ``metrics.reporter.prom.hostUrl``) and ``scrape_url`` (where Prometheus
    reads); ``stop()`` closes the socket."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        ports: int = PORTS_TRIED,
        expire_after: float = 60.0,
    ):
        self.host = host
        self._ports = range(port, port + ports) if port else range(1)
        self._pushes = _Pushes(expire_after)
        self._collectors: list[Callable[[], Iterable[Metric]]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_collector(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Metrics of this process served beside the pushed ones, ``collect()`` called on every
        scrape from a thread of the server."""
        self._collectors.append(collect)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        # pushes come from this machine: to a wildcard listener, over loopback
        wildcard = self.host in ("", "0.0.0.0", "::")  # noqa: S104 (a comparison, not a bind)
        host = "127.0.0.1" if wildcard else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def scrape_url(self) -> str:
        return f"{self.url}/metrics"

    def start(self) -> MetricsGateway:
        handler = _handler(self._pushes, self._collectors)
        for port in self._ports:
            try:
                self._server = ThreadingHTTPServer((self.host, port), handler)
                break
            except OSError as exc:
                last = exc
        else:
            raise OSError(
                f"metrics gateway: no free port in {self._ports.start}..{self._ports.stop - 1}"
                f" on {self.host}: {last}"
            )
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-gateway", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> MetricsGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(
    pushes: _Pushes, collectors: list[Callable[[], Iterable[Metric]]]
) -> type[BaseHTTPRequestHandler]:
    registry = _Registry(pushes, collectors)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, b"only /metrics here\n")
                return
            self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)

        def do_PUT(self) -> None:
            if not self.path.startswith(PUSH_PATH):
                self._answer(404, b"push to /metrics/job/<name>\n")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                pushes.put(self.path, body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                self._answer(400, f"not Prometheus text format: {exc}\n".encode())
                return
            self._answer(202, b"")

        do_POST = do_PUT  # Flink's reporter PUTs; a POST (merge) replaces the push all the same

        def do_DELETE(self) -> None:
            pushes.delete(self.path)
            self._answer(202, b"")

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a request every few seconds: the access log would drown the console

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m job.metrics_gateway",
        description="Take the pushes of Flink's Prometheus push-gateway reporter and serve them "
        "to Prometheus on /metrics.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not is_loopback(args.host):
        log.warning(
            "metrics gateway listens on %s: anyone who reaches this address reads the job's"
            " metrics and can push false ones",
            args.host,
        )
    gateway = MetricsGateway(args.host, args.port, ports=1).start()
    log.info("metrics for Prometheus at http://%s:%d/metrics", args.host, gateway.port)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
