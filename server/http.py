"""Streamable HTTP transport: DNS-rebinding protection always, a bearer token when configured, and
read deadlines and a connection cap against slow clients (`http_guard`)."""

from __future__ import annotations

import hmac

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from nanodistill.settings import Settings
from server.loopback import is_loopback


def bearer_credentials(header: bytes) -> bytes:
    """The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive, RFC
    7235), else b""."""
    scheme, _, credentials = header.strip().partition(b" ")
    return credentials.strip() if scheme.lower() == b"bearer" else b""


class BearerTokenMiddleware:
    """Refuse every HTTP request whose Authorization header does not carry the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            given = bearer_credentials(headers.get(b"authorization", b""))
            if not hmac.compare_digest(given, self.expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error": "missing or wrong bearer token"}'})
                return
        await self.app(scope, receive, send)


class LowercaseHostMiddleware:
    """Host names are case-insensitive (RFC 3986), but the SDK's DNS-rebinding check compares Host
    and Origin exactly: lower-case them first, so `Host: LOCALHOST` passes like `localhost`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, v.lower() if k in (b"host", b"origin") else v) for k, v in scope.get("headers") or []]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def security_for(host: str, port: int) -> TransportSecuritySettings:
    """On loopback, only loopback Host/Origin headers pass (DNS-rebinding protection). Beyond loopback
    the server has a bearer token, which a rebinding page cannot send, and clients reach it by names
    we cannot list, so the Host check is off there."""
    if not is_loopback(host):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = {host.lower(), "127.0.0.1", "localhost", "[::1]"}
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[h for name in hosts for h in (name, f"{name}:{port}")],
        allowed_origins=[f"http://{name}:{port}" for name in hosts],
    )


def http_app(app: MCPServer, settings: Settings, host: str, port: int) -> ASGIApp:
    starlette_app: ASGIApp = app.streamable_http_app(transport_security=security_for(host, port), host=host)
    checked = LowercaseHostMiddleware(starlette_app)
    if settings.token:
        return BearerTokenMiddleware(checked, settings.token)
    return checked


def serve_http(app: MCPServer, settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from server.http_guard import ACCEPT_BATCH, ConnectionGuard, connection_cap, guarded_protocol

    guard = ConnectionGuard(connection_cap(), settings.http_header_timeout_s, settings.http_body_timeout_s)
    config = uvicorn.Config(
        http_app(app, settings, host, port),
        host=host,
        port=port,
        log_level="warning",
        http=guarded_protocol(guard),
        backlog=ACCEPT_BATCH,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
    )
    anyio.run(uvicorn.Server(config).serve)
