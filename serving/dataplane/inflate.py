"""Compressed request bodies (gzip, or zlib-wrapped deflate), inflated never past a limit.

Shared by /predict and the Open Inference Protocol: a few kilobytes of gzip can expand to
gigabytes, so at most `max_bytes` are ever inflated. Blocking: call it in a worker thread.
"""

import zlib

from serving.core.errors import BodyTooLargeError, MalformedRequestError

WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}  # the codings understood


def inflate(body: bytes, coding: str, max_bytes: int) -> bytes:
    """`body` decompressed; 413 past `max_bytes`, 4xx for a damaged or truncated stream."""
    inflater = zlib.decompressobj(WBITS[coding])
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
