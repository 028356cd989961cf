"""This process's own sockets on the SIP port, read from /proc (Linux).

The engine library opens its sockets itself and never hands them out. /proc/self/fd maps descriptors to
socket inodes and /proc/net/{udp,tcp}{,6} maps inodes to addresses, which is enough to tell what the
stack really bound, to set options on its sockets (a duplicated descriptor shares the socket) and to
see the TCP connections peers hold open. Blocking file reads: call from a worker thread.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

_TCP_STATES = {"01": "established", "0A": "listen"}


@dataclass(frozen=True)
class OwnSocket:
    proto: str  # udp | tcp
    family: int
    local_host: str
    local_port: int
    remote_host: str
    remote_port: int
    state: str  # established | listen | other ('' for udp)
    inode: int
    fd: int


def _hex_addr(text: str) -> tuple[str, int]:
    host_hex, port_hex = text.split(":")
    raw = bytes.fromhex(host_hex)
    if len(raw) == 4:
        host = str(ipaddress.IPv4Address(struct.unpack("<I", raw)[0]))
    else:
        words = struct.unpack("<4I", raw)
        addr = ipaddress.IPv6Address(b"".join(struct.pack(">I", w) for w in words))
        host = str(addr.ipv4_mapped or addr)
    return host, int(port_hex, 16)


def _socket_fds() -> dict[int, int]:
    """inode → fd for every socket this process holds."""
    found: dict[int, int] = {}
    base = "/proc/self/fd"
    for name in os.listdir(base):
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found[int(target[8:-1])] = int(name)
    return found


def own_sockets(port: int | None = None, protos: tuple[str, ...] = ("udp", "tcp"), *,
                families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6),
                tcp_state: str | None = None) -> list[OwnSocket]:
    """Sockets of this process whose local port is ``port`` (all of them when None), of the address
    ``families`` given, TCP ones only in ``tcp_state`` when given.

    Cost: the kernel writes /proc/net/tcp{,6} by walking its whole connection table (~6 ms a family here,
    however few sockets there are) and naming our descriptors takes a readlink each (~4 ms for 250), so a
    caller asks only for the families it listens on, and descriptors are named only when a socket matched.
    """
    rows: list[tuple[str, socket.AddressFamily, str, list[str]]] = []
    for proto in protos:
        for suffix, family in (("", socket.AF_INET), ("6", socket.AF_INET6)):
            if family not in families:
                continue
            try:
                with open(f"/proc/net/{proto}{suffix}") as fh:
                    lines = fh.readlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if len(parts) < 10:
                    continue
                state = "" if proto == "udp" else _TCP_STATES.get(parts[3], "other")
                if tcp_state is not None and proto == "tcp" and state != tcp_state:
                    continue
                if port is not None and int(parts[1].rsplit(":", 1)[1], 16) != port:
                    continue
                rows.append((proto, family, state, parts))
    if not rows:
        return []
    fds = _socket_fds()
    out: list[OwnSocket] = []
    for proto, family, state, parts in rows:
        inode = int(parts[9])
        fd = fds.get(inode)
        if fd is None:
            continue
        lhost, lport = _hex_addr(parts[1])
        rhost, rport = _hex_addr(parts[2])
        out.append(OwnSocket(proto, family, lhost, lport, rhost, rport, state, inode, fd))
    return out


def dup_checked(sock: OwnSocket) -> socket.socket | None:
    """A duplicate of the socket's descriptor, or None if the descriptor now names another socket (the
    stack closed it and the number was reused between the scan and now)."""
    try:
        new_fd = os.dup(sock.fd)
    except OSError:
        return None
    try:
        if os.fstat(new_fd).st_ino != sock.inode:
            os.close(new_fd)
            return None
    except OSError:
        os.close(new_fd)
        return None
    kind = socket.SOCK_DGRAM if sock.proto == "udp" else socket.SOCK_STREAM
    return socket.socket(sock.family, kind, fileno=new_fd)


def set_receive_buffer(sockets: list[OwnSocket], size: int) -> list[int]:
    """SO_RCVBUF on the UDP sockets given (the kernel doubles and caps it: SO_RCVBUFFORCE is tried first,
    which root may use past net.core.rmem_max). Returns the sizes the kernel reports."""
    sizes: list[int] = []
    for entry in sockets:
        if entry.proto != "udp":
            continue
        dup = dup_checked(entry)
        if dup is None:
            continue
        with dup:
            try:
                dup.setsockopt(socket.SOL_SOCKET, 33, size)  # SO_RCVBUFFORCE (needs CAP_NET_ADMIN)
            except OSError:
                dup.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            sizes.append(dup.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    return sizes


def tcp_last_receive_ms(sock: socket.socket) -> int | None:
    """Milliseconds since the connection last received data (tcp_info.tcpi_last_data_recv), or None."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < 56:
        return None
    return int(struct.unpack_from("<I", info, 52)[0])
