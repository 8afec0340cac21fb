"""JSON responses encoded with orjson (numpy arrays included)."""

from typing import Any

import orjson
from starlette.responses import Response


class JSONBytes(Response):
    """A JSON answer; accepts already-encoded bytes so cached answers are sent as stored."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
