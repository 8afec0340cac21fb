"""When request work moves from the event loop to a worker thread: one policy for every route.

Decoding or converting a large body takes milliseconds, and on the event loop that would
hold up every other request of the worker, probes included. A small body stays on the loop:
there the work costs less than the hop to a thread and back.
"""

# A body up to this size is decoded on the event loop (/predict and /v2 alike).
INLINE_BODY_BYTES = 64 * 1024
# Rows still to be turned into a matrix once the model is known (rows by feature name, or a
# small body): up to this many are converted on the event loop.
INLINE_ROWS = 256


def decodes_inline(body_bytes: int) -> bool:
    """Whether a request body of this size is parsed on the event loop."""
    return body_bytes <= INLINE_BODY_BYTES


def converts_inline(rows: int) -> bool:
    """Whether this many rows are converted to a feature matrix on the event loop."""
    return rows <= INLINE_ROWS
