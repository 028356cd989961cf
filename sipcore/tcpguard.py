"""TCP connection limits on the SIP port: per source, in total, and an idle timeout.

libre accepts every TCP connection and keeps it as long as the peer does; it has no limit per source or
in total. This guard sweeps the process's established connections on the SIP port (see
:mod:`sipcore.sockets`) and shuts down, on a duplicated descriptor, those that break a rule — the stack
then sees the connection end and frees it. Connections carrying a live call are never closed.
"""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sipcore.sockets import OwnSocket, dup_checked, own_sockets, tcp_last_receive_ms


@dataclass(frozen=True)
class TcpLimits:
    max_per_source: int = 32
    max_total: int = 512
    idle_timeout_s: float = 30.0


@dataclass(frozen=True)
class SweepResult:
    connections: int  # established on the SIP port before the sweep
    closed_idle: int
    closed_per_source: int
    closed_total: int

    @property
    def closed(self) -> int:
        return self.closed_idle + self.closed_per_source + self.closed_total


def _close(entry: OwnSocket) -> bool:
    dup = dup_checked(entry)
    if dup is None:
        return False
    with dup:
        try:
            dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            return False
    return True


def sweep(port: int, limits: TcpLimits, protected: Iterable[tuple[str, int]] = (),
          families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)) -> SweepResult:
    """One pass over the connections on ``port`` (blocking: run in a worker thread).

    ``protected``: (host, port) peers of live calls, never closed. ``families``: those the SIP port listens
    on (each one costs a walk of the kernel's connection table).
    """
    keep = set(protected)
    conns = own_sockets(port, ("tcp",), families=families, tcp_state="established")
    idle_ms: dict[int, int] = {}
    for entry in conns:
        dup = dup_checked(entry)
        if dup is None:
            continue
        with dup:
            idle_ms[entry.inode] = tcp_last_receive_ms(dup) or 0
    live = [c for c in conns if c.inode in idle_ms and (c.remote_host, c.remote_port) not in keep]
    closed_idle = closed_src = closed_total = 0
    limit_ms = limits.idle_timeout_s * 1000
    survivors: list[OwnSocket] = []
    for entry in live:
        if idle_ms[entry.inode] > limit_ms and _close(entry):
            closed_idle += 1
        else:
            survivors.append(entry)
    by_source: dict[str, list[OwnSocket]] = defaultdict(list)
    for entry in survivors:
        by_source[entry.remote_host].append(entry)
    remaining: list[OwnSocket] = []
    for entries in by_source.values():
        entries.sort(key=lambda e: idle_ms[e.inode])  # most recently active first
        remaining.extend(entries[: limits.max_per_source])
        for extra in entries[limits.max_per_source:]:
            closed_src += _close(extra)
    protected_count = len(conns) - len(live)
    room = max(0, limits.max_total - protected_count)
    if len(remaining) > room:
        remaining.sort(key=lambda e: idle_ms[e.inode])
        for extra in remaining[room:]:
            closed_total += _close(extra)
    return SweepResult(len(conns), closed_idle, closed_src, closed_total)
