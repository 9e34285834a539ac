"""What a process tree listens on, as ``ss -ltn`` would show it, for the tests that check that
nothing the job starts is reachable from another machine."""

from __future__ import annotations

from collections.abc import Iterable

import psutil

from job.metrics_gateway import is_loopback


def process_tree(pids: Iterable[int]) -> list[psutil.Process]:
    tree: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                tree[process.pid] = process
        except psutil.NoSuchProcess:
            continue
    return list(tree.values())


def listening(pids: Iterable[int]) -> set[tuple[str, int, str]]:
    """Every TCP listening socket of these processes and their descendants:
    ``(address, port, "pid name")``."""
    found = set()
    for process in process_tree(pids):
        try:
            name = f"{process.pid} {process.name()}"
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port, name))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def beyond_loopback(pids: Iterable[int]) -> list[str]:
    """The listeners another machine could reach, as ``address:port (pid name)`` lines."""
    return sorted(
        f"{address}:{port} ({who})"
        for address, port, who in listening(pids)
        if not is_loopback(address)
    )
