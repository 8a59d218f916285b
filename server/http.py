"""Streamable HTTP transport: DNS-rebinding protection always, a bearer token when configured."""

from __future__ import annotations

import hmac

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from nanodistill.settings import Settings
from server.loopback import is_loopback


class BearerTokenMiddleware:
    """Refuse every HTTP request whose Authorization header does not carry the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"")
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


def security_for(host: str, port: int) -> TransportSecuritySettings:
    """On loopback, only loopback Host/Origin headers pass (DNS-rebinding protection). Beyond loopback
    the server has a bearer token, which a rebinding page cannot send, and clients reach it by names
    we cannot list, so the Host check is off there."""
    if not is_loopback(host):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = {host, "127.0.0.1", "localhost", "[::1]"}
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[h for name in hosts for h in (name, f"{name}:{port}")],
        allowed_origins=[f"http://{name}:{port}" for name in hosts],
    )


def http_app(app: MCPServer, settings: Settings, host: str, port: int) -> ASGIApp:
    starlette_app: ASGIApp = app.streamable_http_app(transport_security=security_for(host, port), host=host)
    if settings.token:
        return BearerTokenMiddleware(starlette_app, settings.token)
    return starlette_app


def serve_http(app: MCPServer, settings: Settings, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(http_app(app, settings, host, port), host=host, port=port, log_level="warning")
    anyio.run(uvicorn.Server(config).serve)
