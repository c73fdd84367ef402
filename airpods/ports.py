"""Is a host port free, and if not, who holds it (a process name from /proc, when visible)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path


def port_is_free(host_ip: str, port: int) -> bool:
    """Whether nothing listens on host_ip:port. Raises ConfigError when `host_ip` (the
    config's runtime.bind_address) is no address of this host (EADDRNOTAVAIL)."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As servers do (podman's port forwarder too): connections that just closed (TIME_WAIT)
        # do not make a port busy; only a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                from airpods.errors import ConfigError

                raise ConfigError(
                    f"{host_ip} is not an address of this host (no network interface has it)",
                    key="runtime.bind_address",
                    hint="`ip -brief address` lists this host's addresses; 127.0.0.1 keeps the stack private",
                ) from None
            raise
    return True


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def port_holder(port: int, proc: Path = Path("/proc")) -> str | None:
    """'NAME (pid N)' of the process listening on `port`, when /proc lets us see it."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir(proc)):
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(proc / pid / "fd" / fd) in wanted:
                    name = (proc / pid / "comm").read_text().strip()
                    return f"{name} (pid {pid})"
            except OSError:
                continue
    return None
