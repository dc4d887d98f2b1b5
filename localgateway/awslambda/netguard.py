"""Refuse any network connection that would leave the machine.

Installed by the test suite and by the gateway's handler processes: a request
to real AWS (a forgotten endpoint setting, a missing mock) fails loudly with
NetworkGuardError instead of quietly reaching the internet. It is a Python
audit hook, so it sees every socket connect and DNS lookup of the process.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterable
from typing import Any

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkGuardError(RuntimeError):
    pass


def is_local(host: Any, allowed: frozenset[str] = frozenset()) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    if host in LOCAL_NAMES or host in allowed:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def install(allowed_hosts: Iterable[str] = ()) -> None:
    """Make every later non-local connect or lookup in this process raise."""
    allowed = frozenset(host.lower() for host in allowed_hosts)

    def guard(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.getaddrinfo":
            host = args[0]
        elif event == "socket.connect":
            sock, address = args
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return
            host = address[0]
        else:
            return
        if not is_local(host, allowed):
            raise NetworkGuardError(
                f"blocked a connection to {host!r}: nothing here may leave the machine"
            )

    sys.addaudithook(guard)
