"""Helpers of the container-networking acceptance tests (podman, Docker, CRI) and benchmark.

The same checks run with runc, the baseline that proves each test, and with
strongbox (jailed, as by default; cold, and cloned from a template where it
matters), whose containers get the engine's interfaces through NIC slots and
tc redirects.

Traffic goes only to loopback and to addresses inside the bridges and
namespaces the tests or their engines create; every wait is bounded.
"""

from __future__ import annotations

import http.server
import ipaddress
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

#: What a test's server hands out, and what a client must get back byte for byte.
PAYLOAD = b"strongbox-netcheck-payload\n"

_T = TypeVar("_T")


def runtime_params(*extra: str, cold: bool = True) -> list[Any]:
    """``runc`` (the baseline), ``strongbox`` (cold, unless not ``cold``), and ``extra``
    (e.g. ``strongbox-template``).

    The strongbox variants boot VMs (``vm``); runc's need neither the mark nor guest
    assets.
    """
    params: list[Any] = [pytest.param("runc", id="runc")]
    for name in (("strongbox",) if cold else ()) + extra:
        params.append(pytest.param(name, id=name, marks=[pytest.mark.vm]))
    return params


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the kernel's pick, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def retry(attempt: Callable[[], _T], timeout: float, interval: float = 0.3) -> _T:
    """``attempt()`` until it returns without an OSError, for at most ``timeout`` seconds.

    A server in a freshly started container (or VM) needs a moment before it
    accepts; the last error is raised once the deadline passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except OSError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


#: urllib without the environment's proxies: every address here is local.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, timeout: float = 30) -> bytes:
    """GET ``url`` (retried until ``timeout``): the body of a 200 answer."""
    def once() -> bytes:
        with _OPENER.open(url, timeout=5) as reply:
            body: bytes = reply.read()
            return body
    try:
        return retry(once, timeout)
    except urllib.error.URLError as e:  # an OSError too: shown with the URL it was for
        raise AssertionError(f"GET {url} failed until the deadline: {e}") from None


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: HostServer = self.server.owner  # type: ignore[attr-defined]
        server.requests.append((self.client_address[0], self.path))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(server.payload)))
        self.end_headers()
        self.wfile.write(server.payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HostServer:
    """An HTTP server on the host, bound to one address (a bridge's host side), in a thread.

    Containers fetch :attr:`url`; :attr:`requests` records (client address,
    path) of each GET, so a test can tell the request came from the container.
    """

    def __init__(self, host: str, payload: bytes = PAYLOAD) -> None:
        self.payload = payload
        self.requests: list[tuple[str, str]] = []
        self._httpd = http.server.ThreadingHTTPServer((host, 0), _Handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._httpd.daemon_threads = True
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.1})

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/from-host"

    def __enter__(self) -> HostServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


@contextmanager
def host_server(host: str, payload: bytes = PAYLOAD) -> Iterator[HostServer]:
    with HostServer(host, payload) as server:
        yield server


_IP_ADDR = re.compile(r"\binet (\d+\.\d+\.\d+\.\d+)/\d+")        # ip -4 addr show
_IFCONFIG = re.compile(r"\binet addr:(\d+\.\d+\.\d+\.\d+)")       # busybox ifconfig
_FIB_LOCAL = re.compile(r"\|--\s+(\d+\.\d+\.\d+\.\d+)\n\s+/32 host LOCAL")


def ipv4_of(output: str) -> str:
    """The (first) IPv4 address in ``ip -4 addr show DEV`` or busybox ``ifconfig DEV`` output.

    Raises AssertionError naming the output when there is none: the failure
    a test shows while eth0 is missing or unconfigured.
    """
    for pattern in (_IP_ADDR, _IFCONFIG):
        if match := pattern.search(output):
            return str(ipaddress.IPv4Address(match.group(1)))
    raise AssertionError(f"no IPv4 address in:\n{output}")


def local_ipv4s_of_fib_trie(fib_trie: str) -> set[str]:
    """The non-loopback local addresses in /proc/net/fib_trie (when ``ip`` is not there)."""
    return {a for a in _FIB_LOCAL.findall(fib_trie) if not a.startswith("127.")}


_MAC = re.compile(r"^([0-9a-f]{2}(:[0-9a-f]{2}){5})$")


def mac_of(sysfs_address: str) -> str:
    """The MAC in /sys/class/net/DEV/address, checked to be one (lower case, six octets)."""
    text = sysfs_address.strip().lower()
    if not _MAC.match(text):
        raise AssertionError(f"not a MAC address: {sysfs_address!r}")
    return text


#: The shell line a container runs to print its eth0 address and MAC (two lines).
ETH0_SCRIPT = "ip -4 addr show eth0 && cat /sys/class/net/eth0/address"


def eth0_of(output: str) -> tuple[str, str]:
    """(IPv4, MAC) from the output of :data:`ETH0_SCRIPT`."""
    lines = output.strip().splitlines()
    if not lines:
        raise AssertionError("no output from the eth0 check")
    return ipv4_of(output), mac_of(lines[-1])


def httpd_script(port: int, payload: bytes = PAYLOAD, bind: str = "") -> str:
    """A busybox shell line that serves ``payload`` as /index.html on ``port``, in the
    foreground (the container's main process). ``bind`` restricts it to one address."""
    text = payload.decode()
    where = f"{bind}:{port}" if bind else str(port)
    return (f"mkdir -p /www && printf '%s' '{text}' > /www/index.html && "
            f"exec httpd -f -p {where} -h /www")


def wget_script(url: str, attempts: int = 20) -> str:
    """A busybox shell line: GET ``url`` to stdout, retried (1 s apart, ``attempts`` times).

    Each try is bounded by ``timeout 5``, not wget's own ``-T``: Debian's static
    busybox wget segfaults with ``-T``.
    """
    return (f"i=0; while [ $i -lt {attempts} ]; do "
            f"timeout 5 wget -q -O - {url} && exit 0; i=$((i+1)); sleep 1; done; exit 1")


def in_subnet(address: str, network: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
