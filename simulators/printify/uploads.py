"""Image uploads as Printify takes them: by URL (fetched, up to 64 MiB) or as base64
``contents`` (at most 5 MB: Printify deprecates them and meant them for small files)."""

from __future__ import annotations

import base64
import binascii
import io
import secrets
from datetime import UTC, datetime

import httpx
from PIL import Image, UnidentifiedImageError

from simulators.printify.errors import Invalid
from simulators.printify.state import Upload

MAX_URL_FETCH_BYTES = 64 * 1024 * 1024
MAX_BASE64_BYTES = 5 * 1024 * 1024


def inspect_image(data: bytes) -> tuple[int, int, str]:
    """Width, height and mime type of a PNG or JPEG, or raise :class:`Invalid`."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise Invalid("The file is not a valid image") from exc
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}.get(fmt or "")
    if mime is None:
        raise Invalid(f"Unsupported image format {fmt}; only PNG and JPEG are accepted")
    return width, height, mime


async def fetch(url: str) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise Invalid("url must be an http(s) URL")
    try:
        async with (
            httpx.AsyncClient(timeout=10.0, follow_redirects=True, trust_env=False) as http,
            http.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise Invalid(f"Could not download the image: HTTP {resp.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > MAX_URL_FETCH_BYTES:
                    raise Invalid("The image is too large")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise Invalid(f"Could not download the image: {type(exc).__name__}") from exc
    return b"".join(chunks)


def _decode(contents: object) -> bytes:
    if not isinstance(contents, str):
        raise Invalid("contents must be a base64 string")
    try:
        data = base64.b64decode(contents, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid("contents is not valid base64") from exc
    if len(data) > MAX_BASE64_BYTES:
        # Base64 uploads are deprecated and meant for small files: print files go by URL.
        raise Invalid("contents: images over 5 MB must be uploaded by url")
    return data


async def make_upload(body: dict[str, object]) -> Upload:
    """Validate an upload body like Printify, fetch or decode the image, and describe it."""
    file_name = body.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise Invalid("file_name is required")
    url, contents = body.get("url"), body.get("contents")
    if (url is None) == (contents is None):
        raise Invalid("Exactly one of url or contents is required")
    if contents is not None:
        data = _decode(contents)
    else:
        if not isinstance(url, str):
            raise Invalid("url must be a string")
        data = await fetch(url)
    width, height, mime = inspect_image(data)
    upload_id = secrets.token_hex(12)
    return Upload(
        id=upload_id,
        file_name=file_name,
        height=height,
        width=width,
        size=len(data),
        mime_type=mime,
        preview_url=f"https://images.printify.com/sim/{upload_id}",
        upload_time=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    )
