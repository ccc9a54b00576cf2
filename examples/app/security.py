"""Security headers on every response, and a bound on request bodies: two small pure-ASGI middlewares.

``SecurityHeaders`` adds, unless the app already set them:

- ``Content-Security-Policy``: only the app's own scripts, styles, images and fonts; forms post only to this site
  (plus ``form_action`` origins, e.g. an OAuth provider a sign-in form redirects to); no plugins; ``frame-ancestors
  'none'`` so no other page can frame ours (a framed "Sign out everywhere else" is one click away from abuse);
- ``X-Frame-Options: DENY`` (the same, for older browsers), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin``, ``Cross-Origin-Opener-Policy: same-origin``, a ``Permissions-Policy`` that
  turns off what the app never uses;
- ``Cache-Control: no-store`` on everything but ``/static/``: account pages must not be kept by a shared computer's
  browser cache or a proxy;
- in production (``hsts=True``, an ``https://`` base URL), ``Strict-Transport-Security: max-age=63072000;
  includeSubDomains``: after one visit the browser never speaks plain HTTP to the app again, so nobody on the
  network can strip TLS from a later visit and read a session cookie (two years; add ``preload`` only once every
  subdomain serves HTTPS and you mean to submit the domain to the preload list).

``BodyLimit`` answers 413 to a request body over ``max_bytes`` (by ``Content-Length``, or counted as it streams),
before any form or JSON parsing sees it.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = ("/docs", "/openapi.json")
HSTS = "max-age=63072000; includeSubDomains"
# Swagger UI (DEV only) loads its script and style from a CDN and starts with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def content_security_policy(form_action: Iterable[str] = ()) -> str:
    sources = " ".join(["'self'", *form_action])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        f"connect-src 'self'; form-action {sources}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


class SecurityHeaders:
    def __init__(
        self, app: ASGIApp, *, form_action: Iterable[str] = (), docs: bool = False, hsts: bool = False
    ) -> None:
        self.app = app
        self.docs = docs
        # Never over plain HTTP in development: a browser would then refuse http://localhost for two years.
        transport = [(b"strict-transport-security", HSTS.encode())] if hsts else []
        common = [
            *transport,
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
        ]
        self.headers = [(b"content-security-policy", content_security_policy(form_action).encode()), *common]
        self.docs_headers = [(b"content-security-policy", DOCS_CSP.encode()), *common]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = self.docs_headers if self.docs and path in DOCS_PATHS else self.headers
        cacheable = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                if not cacheable and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int = 64 * 1024) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await _too_large(send)
                return
        # Read the (bounded) body first, then hand it on: nothing downstream ever sees more than max_bytes.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body_message: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body_message], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _too_large(send: Send) -> None:
    body = b"Request body too large."
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
