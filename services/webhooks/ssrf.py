"""Webhook URLs may not reach inside our network (server-side request forgery).

Checked twice: when an admin registers the URL (every address its name resolves to), and
when a delivery connects (the address actually reached, so a name that resolves elsewhere
by then, DNS rebinding, is still refused)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import NewConnectionError


class Forbidden(ValueError):
    """The URL or the address it reached is not allowed."""


def address_allowed(address: str, allow_private: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return not (ip.is_multicast or ip.is_unspecified)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def check_url(url: str, allow_private: bool, *, resolve: bool = True) -> None:
    """Raise Forbidden unless `url` is http(s) to a host whose every address is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Forbidden("Only http and https URLs can receive webhooks.")
    if not parts.hostname:
        raise Forbidden("The URL has no host.")
    if parts.username or parts.password:
        raise Forbidden("Credentials in the URL are not allowed; use the signing secret.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Forbidden("The URL's port is not valid.") from exc
    if not resolve:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Forbidden(f"The host '{parts.hostname}' does not resolve.") from exc
    for info in infos:
        if not address_allowed(str(info[4][0]), allow_private):
            raise Forbidden(f"'{parts.hostname}' resolves to {info[4][0]}, a private, loopback "
                            "or link-local address (WEBHOOK_ALLOW_PRIVATE_ADDRESSES allows it).")


class _Guard:
    allow_private = False

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        peer = sock.getpeername()[0]
        if not address_allowed(peer, self.allow_private):
            sock.close()
            raise NewConnectionError(
                self, f"refused to deliver to {peer}: not a public address")  # type: ignore[arg-type]
        return sock


def pool_manager(allow_private: bool, timeout: float) -> urllib3.PoolManager:
    """A client whose every connection is checked once connected, before a byte is sent."""
    guard: dict[str, Any] = {"allow_private": allow_private}
    http_cls = type("GuardedHTTPConnection", (_Guard, HTTPConnection), guard)
    https_cls = type("GuardedHTTPSConnection", (_Guard, HTTPSConnection), guard)
    manager = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, num_pools=50)
    manager.pool_classes_by_scheme = {"http": urllib3.HTTPConnectionPool,
                                      "https": urllib3.HTTPSConnectionPool}
    manager.key_fn_by_scheme = dict(manager.key_fn_by_scheme)
    for scheme, cls in (("http", http_cls), ("https", https_cls)):
        pool_cls = type(f"Guarded{scheme.upper()}Pool", (manager.pool_classes_by_scheme[scheme],),
                        {"ConnectionCls": cls})
        manager.pool_classes_by_scheme[scheme] = pool_cls
    return manager
