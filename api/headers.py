"""Security headers on every response: `X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY` everywhere,
and a Content-Security-Policy on HTML pages: nothing but this origin's own assets (inline styles allowed, no
inline or remote script). /docs and /redoc (Swagger UI and ReDoc from the package's own assets) start with an
inline script, so their policy allows that, and still nothing from another host."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = str(scope.get("path", "")).endswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kinds = [value for name, value in headers if name.lower() == b"content-type"]
                headers += [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
                if kinds and kinds[0].startswith(b"text/html"):
                    headers.append((b"content-security-policy", (DOCS_POLICY if docs else PAGE_POLICY).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
