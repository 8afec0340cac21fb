"""Request bodies sent with a Content-Encoding: gzip and deflate are inflated, never past a limit.

The predict routes read an encoded body as the /v2 infer routes do (gzip, or zlib-wrapped
deflate); any other coding is a 415, so the caller is told what is wrong with the request
rather than that its (still compressed) bytes are not JSON.
"""

import anyio

from serving.core.errors import UnsupportedEncodingError
from serving.dataplane.inflate import WBITS, inflate


async def decoded_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """`body` as sent when it has no coding (or `identity`), else inflated in a worker thread."""
    if content_encoding is None:
        return body
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in WBITS:
        raise UnsupportedEncodingError(
            f"Content-Encoding {content_encoding!r} is not supported; send gzip, deflate or none"
        )
    return await anyio.to_thread.run_sync(inflate, body, coding, max_bytes)
