"""The web app's files, served by the node: the page at `/`, `tidings.js`, and their assets.

Everything lives in the `tidings/web` package directory and is served as committed: there is
no build step, so no Node toolchain is needed to run Tidings. Only the files listed in
ASSETS are served (no directory listing, no path from the request reaches the file system).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

WEB = resources.files("tidings") / "web"
ASSETS = {
    "/": ("index.html", "text/html"),
    "/tidings.js": ("tidings.js", "text/javascript"),
    "/app.js": ("app.js", "text/javascript"),
    "/voice.js": ("voice.js", "text/javascript"),
    "/voice-worklet.js": ("voice-worklet.js", "text/javascript"),
    "/strings.js": ("strings.js", "text/javascript"),
    "/app.css": ("app.css", "text/css"),
}
# The page loads nothing from elsewhere; say so, so an injected tag could not either.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self' ws: wss:; media-src 'self' blob:; object-src 'none'; "
          "base-uri 'none'; frame-ancestors 'none'")


def routes() -> list[web.RouteDef]:
    return [web.get(path, _serve(name, kind)) for path, (name, kind) in ASSETS.items()]


def _serve(name: str, kind: str):
    async def handler(request: web.Request) -> web.Response:
        body = (WEB / name).read_bytes()
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if kind == "text/html":
            headers["Content-Security-Policy"] = POLICY
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=headers)

    return handler
