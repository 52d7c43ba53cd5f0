"""Request bodies every simulator parses the same way (multipart uploads: Etsy's listing images,
TikTok's product images), with the exception a vendor's simulator turns into its own 400."""

from __future__ import annotations

import email.parser
import email.policy

from fastapi import Request


class BodyInvalid(Exception):
    """A body the vendor refuses; ``str(exc)`` says why (the vendor's simulator answers it in
    its own error format)."""


async def multipart_body(request: Request) -> dict[str, tuple[bytes, str | None]]:
    """A ``multipart/form-data`` body: field name -> (content, file name or None)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise BodyInvalid("The request body must be multipart/form-data")
    body = await request.body()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise BodyInvalid("The multipart body could not be parsed")
    parts: dict[str, tuple[bytes, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        parts[name] = (content, part.get_filename())
    return parts
