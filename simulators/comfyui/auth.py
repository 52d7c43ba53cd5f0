"""A proxy's Basic-auth gate in front of the simulated ComfyUI."""

from __future__ import annotations

import base64
import hmac
from typing import Any


class BasicAuthProxy:
    """A proxy's Basic-auth gate in front of the app (``SIM_COMFYUI_BASIC_AUTH``): HTTP 401
    with ``WWW-Authenticate`` as nginx answers, and a refused websocket handshake."""

    def __init__(self, app: Any, credentials: str) -> None:
        self.app = app
        self.expected = b"Basic " + base64.b64encode(credentials.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not scope["path"].startswith("/_sim"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = b"<html><head><title>401 Authorization Required</title></head></html>"
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"www-authenticate", b'Basic realm="comfyui"'),
                            (b"content-type", b"text/html"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
