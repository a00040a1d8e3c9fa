"""Which web pages may open a WebSocket (or call the API) here: the Origin allow-list.

A browser lets a page on any site open a WebSocket to any address, cookies and all, and
tells the server only through the `Origin` header whose page it is (Cross-Site WebSocket
Hijacking). Every WebSocket and SockJS endpoint, and the server API, asks `refusal` before
it accepts a request.

- No `Origin` header: not a browser (every browser sends one with a WebSocket handshake and
  a cross-site POST). Allowed: such a client can claim any origin it likes, so only its
  credentials can stop it.
- With auth configured: the node's own origin (the Origin's host and port are the request's
  `Host`), plus `security.allowed_origins`: exact origins (`https://app.example.com`), a
  subdomain wildcard (`https://*.example.com`), or `*` for any.
- In insecure loopback mode (no auth): only pages served from a loopback host (`localhost`,
  127.0.0.0/8, `[::1]`), whatever the allow-list says: there any page could otherwise act
  as any user, and a rebound DNS name (`evil.example` resolving to 127.0.0.1) would pass a
  same-origin check.

`Origin: null` (sandboxed frames, `file:` pages) is refused unless `null` is listed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from tidings.config import Settings, is_loopback_host

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _parse(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, lower-cased, default port filled in; None if malformed."""
    try:
        parts = urlsplit(origin.strip().rstrip("/").lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _host_port(host_header: str, default_port: int) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{host_header.strip().lower()}")
        return parts.hostname or "", parts.port or default_port
    except ValueError:
        return None


class OriginPolicy:
    def __init__(self, settings: Settings):
        self.loopback_only = not settings.auth_enabled
        self.any = "*" in settings.security.allowed_origins
        self.exact: set[tuple[str, str, int]] = set()
        self.suffixes: set[tuple[str, str, int]] = set()  # https://*.example.com
        self.null = "null" in settings.security.allowed_origins
        for entry in settings.security.allowed_origins:
            if entry in ("*", "null"):
                continue
            wildcard = "://*." in entry
            parsed = _parse(entry.replace("://*.", "://", 1))
            if parsed is None:
                raise ValueError(f"security.allowed_origins: {entry!r} is no origin "
                                 "(scheme://host[:port], scheme://*.domain, * or null)")
            (self.suffixes if wildcard else self.exact).add(parsed)

    def refusal_for(self, request: web.BaseRequest) -> str | None:
        return self.refusal(request.headers.get("Origin"), request.headers.get("Host"))

    def refusal(self, origin: str | None, host: str | None) -> str | None:
        """Why a request with this `Origin` and `Host` is refused, or None to accept it."""
        if origin is None:
            return None
        if origin.strip() == "null":
            return None if self.null and not self.loopback_only else f"origin {origin!r} is not allowed"
        parsed = _parse(origin)
        if parsed is None:
            return f"origin {origin[:200]!r} is malformed"
        scheme, hostname, port = parsed
        if self.loopback_only:
            if is_loopback_host(hostname.strip("[]")):
                return None
            return (f"origin {origin} is not allowed: without auth this node accepts pages "
                    "from loopback hosts only")
        if host is not None and _host_port(host, DEFAULT_PORTS[scheme]) == (hostname, port):
            return None
        if self.any or parsed in self.exact:
            return None
        for suffix_scheme, domain, suffix_port in self.suffixes:
            if (scheme, port) == (suffix_scheme, suffix_port) and hostname.endswith("." + domain):
                return None
        return f"origin {origin} is not allowed (security.allowed_origins)"
