"""ServingError to gRPC status code, by the error's stable code first and its HTTP status next.

Deciding by code and status rather than by class keeps every error the data plane raises,
today's and tomorrow's, on the status its HTTP twin implies: `overloaded` (503 over HTTP) is
RESOURCE_EXHAUSTED here, `timeout` DEADLINE_EXCEEDED, any other 503 UNAVAILABLE.
"""

from http import HTTPStatus

import grpc

from serving.core.errors import ServingError

_BY_CODE: dict[str, grpc.StatusCode] = {
    "overloaded": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "timeout": grpc.StatusCode.DEADLINE_EXCEEDED,
}
_BY_STATUS: dict[int, grpc.StatusCode] = {
    HTTPStatus.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    HTTPStatus.UNPROCESSABLE_ENTITY: grpc.StatusCode.INVALID_ARGUMENT,
    HTTPStatus.UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    HTTPStatus.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    HTTPStatus.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    HTTPStatus.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    HTTPStatus.TOO_MANY_REQUESTS: grpc.StatusCode.RESOURCE_EXHAUSTED,
    HTTPStatus.SERVICE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    HTTPStatus.GATEWAY_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_of(error: ServingError) -> grpc.StatusCode:
    by_code = _BY_CODE.get(error.code)
    if by_code is not None:
        return by_code
    return _BY_STATUS.get(error.status_code, grpc.StatusCode.INTERNAL)
