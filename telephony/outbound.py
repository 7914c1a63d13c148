"""The one way out to a URL a customer chose (webhooks today; pre-dial checks, platform base URLs).

Such a request leaves from inside our network, so a URL must not be able to reach what only we
can reach: a metadata service (169.254.169.254), Redis on loopback, a private subnet. Every
request here is therefore:

- http or https only, to a host that resolves only to global addresses — loopback, private,
  link-local, shared (100.64/10), multicast, reserved and unspecified ranges are refused, IPv4
  and IPv6 alike, and an IPv6 address carrying an IPv4 one (mapped, 6to4, NAT64) is judged by
  the IPv4 address it carries;
- sent to the very address that was checked: the connection goes to that IP, with the `Host`
  header, TLS SNI and certificate verification for the original host name, so DNS cannot answer
  differently between the check and the connection;
- never redirected (a 3xx is the answer), proxies from the environment are not used, and connect
  time, total time and response size are bounded.

`OUTBOUND_ALLOW_PRIVATE=true` lifts the address rule for a deployment that really calls internal
hosts (on-premise, tests, local stand-ins); everything else still applies.

`check_url(url)` is the rule alone (save time); `validate_outbound_url(url, field)` turns its
refusal into a `ValidationError` naming the field; `OutboundSession().request(...)` sends.
Failures raise `OutboundError` with a short reason of our own wording: callers store that, never
what the remote said, so an answer from an internal service is never shown back to a tenant.
"""
import http
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from django.core.exceptions import ValidationError

DEFAULT_CONNECT_TIMEOUT_SECONDS = 3.0
DEFAULT_TOTAL_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
READ_CHUNK_BYTES = 8192
ALLOWED_SCHEMES = {"http": 80, "https": 443}

SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class OutboundError(Exception):
    """A request that was refused or failed; `reason` is short, ours, and safe to show a tenant."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class OutboundRefused(OutboundError):
    """The URL may not be called: its scheme, its form, or an address its host resolves to."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`addresses`, all checked) and what to say once connected."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple

    @property
    def host_header(self):
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == ALLOWED_SCHEMES[self.scheme] else f"{name}:{self.port}"


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    body: bytes

    @property
    def ok(self):
        return 200 <= self.status < 300


def address_refusal(address):
    """Why an address may not be called (its kind), or None for a global one.

    >>> [address_refusal(a) for a in ("93.184.216.34", "10.0.0.5", "::ffff:127.0.0.1", "100.64.0.1")]
    [None, 'private', 'loopback', 'shared']
    """
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        # An IPv6 address that carries an IPv4 one reaches that IPv4 address: judge that one.
        carried = ip.ipv4_mapped or ip.sixtofour
        if carried is None and ip in NAT64_PREFIX:
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if carried is not None:
            return address_refusal(carried)
    for kind, test in (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                       ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                       ("shared", ip in SHARED_ADDRESS_SPACE), ("reserved", ip.is_reserved),
                       ("site-local", ip.version == 6 and ip.is_site_local), ("private", ip.is_private)):
        if test:
            return kind
    # is_global also knows ranges the tests above do not name (e.g. 192.0.0.0/24).
    return None if ip.is_global else "non-global"


def system_resolve(host, port):
    """Every address `host` resolves to, as strings (the resolver outbound requests use)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"host name {host!r} does not resolve") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def allow_private():
    return getattr(settings, "OUTBOUND_ALLOW_PRIVATE", False)


def check_url(url, resolve=None):
    """The `Target` for `url`, or `OutboundRefused` saying why it may not be called.

    `resolve(host, port) -> [address, ...]` defaults to the system resolver; a literal IP is its
    own only address. Every address must be global unless OUTBOUND_ALLOW_PRIVATE is on.
    """
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused("is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise OutboundRefused("must be an http:// or https:// URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise OutboundRefused("must name a host")
    port = port or ALLOWED_SCHEMES[scheme]
    try:
        addresses, literal = [str(ipaddress.ip_address(host))], True
    except ValueError:
        addresses, literal = (resolve or system_resolve)(host, port), False
    if not addresses:
        raise OutboundRefused(f"host name {host!r} does not resolve")
    if not allow_private():
        for address in addresses:
            kind = address_refusal(address)
            if kind is not None:
                raise OutboundRefused(f"{host} is a {kind} address; only public internet addresses may "
                                      "be called" if literal else
                                      f"{host} resolves to a {kind} address ({address}); only public "
                                      "internet addresses may be called")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


def validate_outbound_url(url, field, resolve=None):
    """Save-time check: raise `ValidationError({field: [reason]})` for a URL `check_url` refuses."""
    try:
        check_url(url, resolve=resolve)
    except OutboundRefused as exc:
        raise ValidationError({field: [exc.reason]}) from None


class OutboundSession:
    """Sends requests to checked URLs, keeping one pinned connection pool per (address, host)."""

    def __init__(self, resolve=None, ca_certs=None):
        self.resolve = resolve
        self.ca_certs = ca_certs or certifi.where()
        self.pools = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

    def _pool(self, target, address):
        key = (target.scheme, address, target.port, target.host)
        if key not in self.pools:
            if target.scheme == "https":
                # Connect to the checked IP; SNI and the certificate check are for the host name.
                self.pools[key] = urllib3.HTTPSConnectionPool(
                    address, target.port, retries=False, cert_reqs="CERT_REQUIRED", ca_certs=self.ca_certs,
                    server_hostname=target.host, assert_hostname=target.host)
            else:
                self.pools[key] = urllib3.HTTPConnectionPool(address, target.port, retries=False)
        return self.pools[key]

    def request(self, method, url, body=None, headers=None, max_bytes=None, connect_timeout=None,
                total_timeout=None):
        """Send one request to `url` (checked here, at use) and return its `OutboundResponse`.

        Raises `OutboundRefused` for a URL that may not be called (nothing is sent) and
        `OutboundError` for a failure: no connection, TLS, timeout, or a body over `max_bytes`.
        """
        target = check_url(url, resolve=self.resolve)
        connect_timeout = connect_timeout or getattr(settings, "OUTBOUND_CONNECT_TIMEOUT_SECONDS",
                                                     DEFAULT_CONNECT_TIMEOUT_SECONDS)
        total_timeout = total_timeout or getattr(settings, "OUTBOUND_TIMEOUT_SECONDS", DEFAULT_TOTAL_TIMEOUT_SECONDS)
        max_bytes = max_bytes or getattr(settings, "OUTBOUND_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES)
        deadline = time.monotonic() + total_timeout
        headers = {**(headers or {}), "Host": target.host_header}
        failure = None
        for address in target.addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            timeout = urllib3.Timeout(connect=min(connect_timeout, remaining), read=remaining)
            try:
                response = self._pool(target, address).urlopen(
                    method, target.path, body=body, headers=headers, redirect=False, retries=False,
                    timeout=timeout, preload_content=False, assert_same_host=False)
            except urllib3.exceptions.NewConnectionError:
                failure = OutboundError("connection refused or unreachable")
                continue  # the host's next checked address, if any
            except urllib3.exceptions.ConnectTimeoutError:
                failure = OutboundError("timed out connecting")
                continue
            except urllib3.exceptions.SSLError as exc:
                raise OutboundError("TLS handshake or certificate verification failed") from exc
            except urllib3.exceptions.ReadTimeoutError as exc:
                raise OutboundError("timed out waiting for the response") from exc
            except urllib3.exceptions.HTTPError as exc:
                raise OutboundError("connection failed") from exc
            try:
                return OutboundResponse(response.status, _read_bounded(response, max_bytes, deadline))
            finally:
                response.release_conn()
        raise failure or OutboundError("timed out")


def _read_bounded(response, max_bytes, deadline):
    chunks, size = [], 0
    try:
        while True:
            if time.monotonic() > deadline:
                raise OutboundError("timed out reading the response")
            chunk = response.read(READ_CHUNK_BYTES)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > max_bytes:
                raise OutboundError(f"response larger than {max_bytes} bytes")
            chunks.append(chunk)
    except OutboundError:
        # Unread bytes would be the next request's garbage: this connection is done.
        response.close()
        raise
    except urllib3.exceptions.ReadTimeoutError as exc:
        response.close()
        raise OutboundError("timed out reading the response") from exc
    except urllib3.exceptions.HTTPError as exc:
        response.close()
        raise OutboundError("connection failed while reading the response") from exc


def status_reason(status):
    """Our wording for an answer that was not a success: the code and its standard phrase only.

    >>> status_reason(503)
    'HTTP 503 Service Unavailable'
    """
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
