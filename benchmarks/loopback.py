"""Keep a worker on loopback: every connection or name lookup elsewhere is refused and counted.

The systems under test are third-party libraries that may phone home (cost maps, telemetry,
release checks). The benchmark must never send traffic past 127.0.0.0/8, so the socket layer
itself refuses, and the report says how many attempts it refused.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = ["blocked", "guard"]

_blocked: list[str] = []
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def blocked() -> list[str]:
    """The addresses refused so far in this process."""
    return list(_blocked)


def _is_local(host: object) -> bool:
    if host in _LOCAL_NAMES:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def _refuse(host: object) -> OSError:
    _blocked.append(str(host))
    return OSError(f"benchmarks: traffic to {host!r} is blocked (loopback only)")


def guard() -> None:
    """Patch the socket module so that only loopback is reachable; idempotent."""
    if getattr(socket, "_bench_guarded", False):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise _refuse(address[0])

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local(host):
            raise _refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    socket._bench_guarded = True  # type: ignore[attr-defined]
