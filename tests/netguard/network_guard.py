"""A guard that keeps tests on this machine: no connection outside loopback, no DNS lookup of
a name that is not local.

`install()` patches the Python socket layer of the process it runs in. A blocked attempt
raises `NetworkBlocked` (or `NameResolutionBlocked` for a lookup): both are OSErrors, so a
library sees "no network" and fails as it would offline. Because a library may swallow that
error (retry, fall back, log), every blocked attempt is also appended as one line to the file
named by the `AIRFLOW_TF_EXPORT_NETWORK_LOG` environment variable; the pytest plugin
(`network_guard_plugin.py`, loaded by tests/conftest.py) reads it after every test phase and
fails the test that caused it.

The plugin installs the guard in the pytest process and puts this directory on PYTHONPATH,
so `sitecustomize.py` here installs it in every Python process a test starts (`airflow dags
test`, the GCS emulator, workers), logging to the same file.

Only Python sockets are seen: a C extension that opens its own sockets (TensorFlow's GCS
file system, gRPC core) bypasses the guard.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import traceback
from typing import Any

LOG_ENV = "AIRFLOW_TF_EXPORT_NETWORK_LOG"
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NetworkBlocked(ConnectionRefusedError):
    """A connection to an address outside loopback was attempted."""


class NameResolutionBlocked(socket.gaierror):
    """A lookup of a name that is not local was attempted (it could reach a DNS server)."""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _text(host: object) -> str:
    return host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)


def _is_localhost_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def is_loopback(host: object) -> bool:
    """Whether connecting to `host` (an address or a name) stays on this machine."""
    text = _text(host)
    ip = _ip(text)
    if ip is None:
        return _is_localhost_name(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def resolves_locally(host: object) -> bool:
    """Whether looking `host` up needs no DNS server: no host, an address, a localhost name
    or this machine's own name (answered from /etc/hosts)."""
    if host is None:
        return True
    text = _text(host)
    return (
        _ip(text) is not None
        or _is_localhost_name(text)
        or text.lower().rstrip(".") in _own_names()
    )


def _own_names() -> frozenset[str]:
    name = socket.gethostname().lower()
    return frozenset({name, name.split(".")[0]})


def _record(what: str) -> None:
    """Append one line to the shared log: pid, what was blocked, where it came from."""
    frames = traceback.extract_stack()[:-3][-6:]
    where = " <- ".join(f"{f.filename}:{f.lineno} {f.name}" for f in reversed(frames))
    line = f"pid {os.getpid()}: {what}; at {where}".replace("\n", " ") + "\n"
    path = os.environ.get(LOG_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _check_address(sock: socket.socket, address: Any, call: str) -> None:
    if sock.family not in _INET_FAMILIES or not isinstance(address, tuple) or not address:
        return
    if not is_loopback(address[0]):
        what = f"socket.{call} to {address[:2]!r}, outside 127.0.0.1"
        _record(what)
        raise NetworkBlocked(f"network guard: {what} (tests must stay on loopback)")


def _check_name(host: object, call: str, allowed: bool) -> None:
    if not allowed:
        what = f"socket.{call}({_text(host)!r}), a lookup that needs a DNS server"
        _record(what)
        raise NameResolutionBlocked(
            socket.EAI_NONAME, f"network guard: {what} (tests must stay on loopback)"
        )


def install() -> None:
    """Patch the socket module of this process (once)."""
    if getattr(socket, "_airflow_tf_export_network_guard", False):
        return
    socket_class: Any = socket.socket
    real_connect = socket_class.connect
    real_connect_ex = socket_class.connect_ex
    real_sendto = socket_class.sendto
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_gethostbyname_ex = socket.gethostbyname_ex
    real_gethostbyaddr = socket.gethostbyaddr

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(self, address, "connect")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(self, address, "connect_ex")
        return int(real_connect_ex(self, address))

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        _check_address(self, args[-1] if args else None, "sendto")
        return int(real_sendto(self, data, *args))

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _check_name(host, "getaddrinfo", resolves_locally(host))
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        _check_name(host, "gethostbyname", resolves_locally(host))
        return real_gethostbyname(host)

    def gethostbyname_ex(host: str) -> Any:
        _check_name(host, "gethostbyname_ex", resolves_locally(host))
        return real_gethostbyname_ex(host)

    def gethostbyaddr(host: str) -> Any:
        # A reverse lookup of an address outside loopback asks a DNS server.
        local = is_loopback(host) if _ip(_text(host)) is not None else resolves_locally(host)
        _check_name(host, "gethostbyaddr", local)
        return real_gethostbyaddr(host)

    socket_class.connect = connect
    socket_class.connect_ex = connect_ex
    socket_class.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.gethostbyaddr = gethostbyaddr
    socket._airflow_tf_export_network_guard = True  # type: ignore[attr-defined]


class BlockedLog:
    """Reads the lines appended to the log since the last read."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0

    def new_lines(self) -> list[str]:
        """Blocked attempts logged since the previous call (by any process)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return complete.decode(errors="replace").splitlines()
