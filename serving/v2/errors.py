"""Errors under /v2 in the protocol's shape: `{"error": "<message>"}`, 400 for bad input.

/predict answers bad input with 422 and `{"error": {"code", "message"}}`; the protocol's
implementations (Triton, KServe, MLServer) use 400 and a bare message, and their clients
read exactly that.
"""

from http import HTTPStatus
from typing import Any

PREFIX = "/v2"


def is_protocol_path(path: str) -> bool:
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def protocol_status(status: int) -> int:
    return HTTPStatus.BAD_REQUEST if status == HTTPStatus.UNPROCESSABLE_ENTITY else status


def protocol_error(message: str) -> dict[str, Any]:
    return {"error": message}
