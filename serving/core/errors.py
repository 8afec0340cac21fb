"""ServingError hierarchy: each class fixes its HTTP status and stable error code."""

from http import HTTPStatus
from typing import ClassVar


class ServingError(Exception):
    status_code: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal_error"

    @property
    def message(self) -> str:
        return str(self)


class InvalidInputError(ServingError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_input"


class MalformedRequestError(ServingError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "malformed_request"


class TooManyRowsError(ServingError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "too_many_rows"


class RejectedByModelError(ServingError):
    """The estimator itself refused rows of the right shape (e.g. a category it never saw)."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "rejected_by_model"


class ScoringFailedError(ServingError):
    """The estimator raised something other than a refusal: a fault of the model or server."""

    code = "scoring_failed"


class OverloadedError(ServingError):
    """Refused before any work: the worker already holds as many requests as it may."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "overloaded"
    retry_after_seconds: ClassVar[int] = 1


class DeadlineExceededError(ServingError):
    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "timeout"


class BodyTooLargeError(ServingError):
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "body_too_large"


class ModelNotFoundError(ServingError):
    status_code = HTTPStatus.NOT_FOUND
    code = "model_not_found"


class VersionNotFoundError(ServingError):
    status_code = HTTPStatus.NOT_FOUND
    code = "version_not_found"


class AliasNotFoundError(ServingError):
    status_code = HTTPStatus.NOT_FOUND
    code = "alias_not_found"


class RouteNotFoundError(ServingError):
    status_code = HTTPStatus.NOT_FOUND
    code = "not_found"


class MethodNotAllowedError(ServingError):
    status_code = HTTPStatus.METHOD_NOT_ALLOWED
    code = "method_not_allowed"


class AuthenticationError(ServingError):
    status_code = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class ManagementDisabledError(ServingError):
    status_code = HTTPStatus.FORBIDDEN
    code = "management_disabled"


class VersionInUseError(ServingError):
    status_code = HTTPStatus.CONFLICT
    code = "version_in_use"


class AliasInUseError(ServingError):
    """The alias is part of the model's traffic split or its shadow."""

    status_code = HTTPStatus.CONFLICT
    code = "alias_in_use"


class ArtifactRejectedError(ServingError):
    """The artifact or manifest failed verification; nothing was stored or loaded."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "artifact_rejected"


class ModelLoadError(ServingError):
    """A version on disk could not be loaded (bad checksum, signature, library version, ...)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "model_unavailable"


class RegistryReadOnlyError(ServingError):
    """The registry folder cannot be written on this server (e.g. a read-only volume)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "registry_read_only"


class NotReadyError(ServingError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "not_ready"


class UnsupportedEncodingError(ServingError):
    """A request body in a Content-Encoding the route cannot read."""

    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_encoding"
