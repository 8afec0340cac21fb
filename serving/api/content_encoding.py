"""Request bodies sent with a Content-Encoding: gzip and deflate are inflated, never past a limit.

The predict routes read an encoded body as the /v2 infer routes do (gzip, or zlib-wrapped
deflate); any other coding is a 415, so the caller is told what is wrong with the request
rather than that its (still compressed) bytes are not JSON.
"""

import zlib

import anyio

from serving.core.errors import BodyTooLargeError, MalformedRequestError, UnsupportedEncodingError

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}  # deflate means zlib-wrapped


async def decoded_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """`body` as sent when it has no coding (or `identity`), else inflated in a worker thread."""
    if content_encoding is None:
        return body
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in _WBITS:
        raise UnsupportedEncodingError(
            f"Content-Encoding {content_encoding!r} is not supported; send gzip, deflate or none"
        )
    return await anyio.to_thread.run_sync(_inflate, body, coding, max_bytes)


def _inflate(body: bytes, coding: str, max_bytes: int) -> bytes:
    """At most `max_bytes` are inflated: a few kilobytes of gzip can expand to gigabytes."""
    inflater = zlib.decompressobj(_WBITS[coding])
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedRequestError(f"body is not valid {coding}: {exc}") from None
    if len(inflated) > max_bytes:
        raise BodyTooLargeError(
            f"inflated body is larger than {max_bytes} bytes (SERVING_MAX_BODY_BYTES)"
        )
    if not inflater.eof:
        raise MalformedRequestError(f"body is not valid {coding}: the stream is truncated")
    return inflated
