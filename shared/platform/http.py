"""HTTP for the vendor clients: httpx's API on aiohttp's wire.

The vendor clients keep httpx's client API (requests, responses, errors, timeouts, and in-process
transports for tests), but send through :class:`AiohttpTransport` instead of httpx's own
httpcore + h11, whose pure-Python connection pool and parser cost most of the pipeline's CPU:
measured against the Printify simulator on this 2-core machine, httpcore took 1.4-3.0 ms of
client CPU per request, this transport 0.6-1.0 ms and aiohttp alone 0.3-0.5 ms.

aiohttp's failures come back as httpx's exceptions (connect, read and pool timeouts, refused or
dropped connections), so the clients' error mapping works unchanged. The Anthropic SDK is built on
``httpx2``, httpx's fork with the same API: :func:`async_client2` gives it the same transport.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from typing import Any

import aiohttp
import certifi
import httpx
import httpx2
import orjson
import yarl
from opentelemetry.trace import SpanKind

from shared.platform import tracing
from shared.platform.handback import mark_sent

# Headers aiohttp derives from the request itself; sending httpx's copies would double them.
_DERIVED = frozenset({b"host", b"content-length", b"transfer-encoding"})
# Headers that describe the body as it came over the wire, which aiohttp has already decoded.
_DECODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class _AiohttpSender:
    """Sends httpx-style requests with one aiohttp session (created on first use, in the
    running loop); ``mod`` is the httpx module whose types it speaks (httpx or httpx2)."""

    mod: Any = httpx

    def __init__(self, *, limits: Any = None, verify: bool = True, trust_env: bool = True) -> None:
        self.limits = limits or self.mod.Limits(max_connections=100, max_keepalive_connections=20)
        self.verify = verify
        self.trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        # The environment's proxies, read once. aiohttp's own ``trust_env`` re-reads them, and
        # parses ~/.netrc, on every request: 4-5 % of a stage's CPU under load.
        self._proxies = urllib.request.getproxies_environment() if trust_env else {}
        self._proxy_for: dict[tuple[str, str], yarl.URL | None] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_context: ssl.SSLContext | bool = False
            if self.verify:
                ssl_context = ssl.create_default_context(cafile=certifi.where())
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections or 0,
                keepalive_timeout=self.limits.keepalive_expiry or 5.0,
                ssl=ssl_context,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=True,
                # httpx already chose these (or the caller did): aiohttp must not add its own.
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` with aiohttp; the whole body is read before returning."""
        # From here the vendor may act on it: the message is no longer handed back at shutdown.
        mark_sent()
        timeout = _timeout(request.extensions.get("timeout") or {})
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() not in _DERIVED
        ]
        body = await request.aread()
        # Already percent-encoded by httpx: sent as it is.
        url = yarl.URL(str(request.url), encoded=True)
        # A vendor call is a child span of the message's (no query string: it may hold keys).
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "server.address": url.host or "",
            "url.path": url.path,
        }
        with tracing.span(
            f"{request.method} {url.host}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            resp, content = await self._send(request, url, headers, body, timeout)
            span.set_attribute("http.response.status_code", resp.status)
        response_headers = [
            (k, v) for k, v in resp.raw_headers if k.decode("latin-1").lower() not in _DECODED
        ]
        return self.mod.Response(
            resp.status,
            headers=response_headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (resp.reason or "").encode()},
        )

    async def _send(
        self, request: Any, url: yarl.URL, headers: list[tuple[str, str]], body: bytes, timeout: Any
    ) -> tuple[Any, bytes]:
        for attempt in (1, 2):
            try:
                async with self._get_session().request(
                    request.method,
                    url,
                    proxy=self._proxy(url),
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,
                    timeout=timeout,
                ) as resp:
                    return resp, await resp.read()
            except Exception as exc:
                # A pooled connection the server closed (a restart) before the loop saw it
                # go: nothing was written, so once more on a fresh one does nothing twice.
                if attempt == 1 and _never_written(exc):
                    continue
                raise _as_httpx(self.mod, exc, request) from exc
        raise AssertionError("unreachable")

    def _proxy(self, url: yarl.URL) -> yarl.URL | None:
        """The proxy for ``url`` from HTTP(S)_PROXY / NO_PROXY (credentials may be in it)."""
        if not self._proxies:
            return None
        key = (url.scheme, url.host or "")
        if key not in self._proxy_for:
            proxy = self._proxies.get(url.scheme)
            # Undeclared in typeshed, public in the stdlib since 3.x: NO_PROXY semantics.
            bypass = urllib.request.proxy_bypass_environment(key[1], self._proxies)  # type: ignore[attr-defined]
            self._proxy_for[key] = yarl.URL(proxy) if proxy and not bypass else None
        return self._proxy_for[key]

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class AiohttpTransport(_AiohttpSender, httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` over aiohttp. Timeouts come from each request (httpx
    sets them from the client's)."""

    mod = httpx


class Aiohttp2Transport(_AiohttpSender, httpx2.AsyncBaseTransport):
    """The same for ``httpx2`` (the Anthropic SDK's HTTP library)."""

    mod = httpx2


class AcyclicAsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose read answers are freed as soon as they are dropped.

    httpx 0.28.1 wraps each answer's stream in a ``BoundAsyncStream`` that keeps the answer
    (to set its ``elapsed``): a reference cycle, so an answer, its request and both bodies live
    until the collector's next full pass. On the soak (``bench/soak.py``) that held ~0.4 MB a
    job in the printify stage (product bodies, uploads), a sawtooth of +30 MB between passes
    that grew as the passes spaced out. Once the body is read and the stream closed, the
    stream is swapped for one over the same bytes, which keeps nothing else (httpx2, under the
    Anthropic SDK, no longer makes the cycle)."""

    async def send(
        self, request: httpx.Request, *, stream: bool = False, **kwargs: Any
    ) -> httpx.Response:
        response = await super().send(request, stream=stream, **kwargs)
        if not stream:
            response.stream = httpx.ByteStream(response.content)
        return response


def async_client(
    *,
    limits: httpx.Limits | None = None,
    verify: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An :class:`AcyclicAsyncClient` that sends through :class:`AiohttpTransport`, or through
    ``transport`` (tests: ``httpx.ASGITransport`` over a simulator's app, in process)."""
    transport = transport or AiohttpTransport(limits=limits, verify=verify)
    return AcyclicAsyncClient(transport=transport, **kwargs)


def async_client2(
    *, limits: httpx2.Limits | None = None, verify: bool = True, **kwargs: Any
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` that sends through :class:`Aiohttp2Transport`."""
    transport = Aiohttp2Transport(limits=limits, verify=verify)
    return httpx2.AsyncClient(transport=transport, **kwargs)


JSON_HEADERS = {"Content-Type": "application/json"}


def json_content(body: object) -> bytes:
    """``body`` as a JSON request body: what httpx's ``json=`` sends, made by orjson, which
    takes a fifth of the stdlib's CPU on a Printify product (measured, bench/pipeline.py)."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


def json_of(response: httpx.Response) -> Any:
    """A response's JSON body (httpx's ``response.json()``, parsed by orjson)."""
    return orjson.loads(response.content)


def _never_written(exc: Exception) -> bool:
    """Whether aiohttp failed writing the request itself (so the server cannot have acted)."""
    if isinstance(exc, aiohttp.ClientConnectionResetError):  # "Cannot write to closing transport"
        return True
    return isinstance(exc, aiohttp.ClientOSError) and "write request body" in str(exc)


def _timeout(spec: dict[str, float | None]) -> aiohttp.ClientTimeout:
    # httpx: connect, read, write, pool. aiohttp: `connect` covers waiting for a pooled
    # connection and connecting, `sock_connect` the connect alone, `sock_read` each read.
    connect, pool = spec.get("connect"), spec.get("pool")
    waiting = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(
        total=None, connect=waiting, sock_connect=connect, sock_read=spec.get("read")
    )


def _as_httpx(mod: Any, exc: Exception, request: Any) -> Exception:
    """aiohttp's (and asyncio's) failures as the httpx exceptions clients expect."""
    mapped: Exception = _mapped(mod, exc, request)
    return mapped


def _mapped(mod: Any, exc: Exception, request: Any) -> Any:
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return mod.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return mod.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return mod.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return mod.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return mod.ReadError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return mod.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return mod.NetworkError(message, request=request)
    return exc
