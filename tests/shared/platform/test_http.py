"""httpx's API over the aiohttp transport, against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import weakref
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from devstack.launch.ports import free_port
from shared.platform.http import async_client


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "raw_path": request.raw_path,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body.decode(),
            }
        )

    async def gzipped(request: web.Request) -> web.Response:
        data = gzip.compress(b'{"packed": true}')
        return web.Response(
            body=data, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/slow", slow)
    app.router.add_get("/moved", moved)
    app.router.add_delete("/empty", empty)
    app.router.add_get("/hang-up", hang_up)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_requests_and_answers_go_through_unchanged(server: str) -> None:
    async with async_client(base_url=server, headers={"Authorization": "Bearer k"}) as c:
        resp = await c.post("/echo/a%20b", params={"q": "x y&z"}, json={"n": 1})
        assert resp.status_code == 200
        seen = resp.json()
        assert seen["method"] == "POST"
        assert seen["raw_path"].startswith("/echo/a%20b?")
        assert seen["query"] == {"q": "x y&z"}
        assert seen["headers"]["authorization"] == "Bearer k"
        assert seen["headers"]["content-type"] == "application/json"
        assert json.loads(seen["body"]) == {"n": 1}
        assert "aiohttp" not in seen["headers"]["user-agent"]  # httpx's, not aiohttp's
        assert resp.request.url.raw_path.startswith(b"/echo/a%20b")
        deleted = await c.delete("/empty")
        assert deleted.status_code == 204 and deleted.content == b""


async def test_a_compressed_body_is_decoded_once(server: str) -> None:
    async with async_client(base_url=server) as c:
        resp = await c.get("/gzip")
    assert resp.json() == {"packed": True}
    assert "content-encoding" not in resp.headers


async def test_redirects_are_left_to_the_caller(server: str) -> None:
    async with async_client(base_url=server) as c:
        resp = await c.get("/moved")
    assert resp.status_code == 302 and resp.headers["location"] == "/echo"


async def test_failures_are_httpx_exceptions(server: str) -> None:
    async with async_client(base_url=server, timeout=httpx.Timeout(0.3)) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get("/slow")
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get("/hang-up")
    async with async_client(base_url=f"http://127.0.0.1:{free_port()}") as c:
        with pytest.raises(httpx.ConnectError):
            await c.get("/")


async def test_the_environment_proxy_is_used_unless_no_proxy_names_the_host(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    # The echo server stands in for the proxy: a name that resolves nowhere reaches it only
    # through the proxy.
    monkeypatch.setenv("HTTP_PROXY", server)
    async with async_client(base_url="http://vendor.invalid") as c:
        for _ in range(2):  # the second from the per-host cache
            seen = (await c.get("/echo/via-proxy")).json()
            assert seen["path"] == "/echo/via-proxy"
            assert seen["headers"]["host"] == "vendor.invalid"
    monkeypatch.setenv("NO_PROXY", "vendor.invalid")
    async with async_client(base_url="http://vendor.invalid") as c:
        with pytest.raises(httpx.ConnectError):
            await c.get("/echo/direct")


async def _answer_alive_without_collector(client: httpx.AsyncClient) -> bool:
    """Whether an answer (and its request's body) outlives its last reference while the
    collector is off: only a reference cycle keeps it."""
    gc.collect()
    gc.disable()
    try:
        response = await client.post("http://vendor.test/products", content=b"x" * 100_000)
        assert response.content == b"y" * 100_000
        request = weakref.ref(response.request)
        answer = weakref.ref(response)
        del response
        return answer() is not None or request() is not None
    finally:
        gc.enable()
        gc.collect()


async def test_an_answer_is_freed_when_dropped_not_at_the_collectors_next_full_pass() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"y" * 100_000)

    async with async_client(transport=httpx.MockTransport(handler)) as client:
        assert not await _answer_alive_without_collector(client)
    # The cycle the client breaks is httpx's own (0.28.1): when this fails, httpx no longer
    # makes it and AcyclicAsyncClient can go.
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as plain:
        assert await _answer_alive_without_collector(plain)
