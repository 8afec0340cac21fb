"""Stand-in bearer-token checks for /v2, until the shared serving/auth.py lands.

TODO(#6): when serving/auth.py (branch `lifecycle`) is merged, point routes/v2.py at its
admin-token and API-key dependencies and delete this module; the semantics below follow
API.md so the swap changes no answer.
"""

import hmac

from fastapi import Request

from serving.deps import SettingsDep
from serving.errors import AuthenticationError, ManagementDisabledError


def _bearer_token(request: Request) -> bytes | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" and token.strip() else None


def _is_one_of(token: bytes | None, accepted: list[str]) -> bool:
    # compare_digest on every candidate: no early exit that would time which one matched
    matches = [hmac.compare_digest(token or b"", item.encode()) for item in accepted]
    return token is not None and any(matches)


def require_admin(request: Request, settings: SettingsDep) -> None:
    """403 while no admin token is configured; 401 without a valid one."""
    if not settings.admin_tokens:
        raise ManagementDisabledError("management is off: no SERVING_ADMIN_TOKENS configured")
    if not _is_one_of(_bearer_token(request), settings.admin_tokens):
        raise AuthenticationError("a valid admin bearer token is required")


def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Open while SERVING_API_KEYS is unset; otherwise 401 without one of the keys."""
    if settings.api_keys and not _is_one_of(_bearer_token(request), settings.api_keys):
        raise AuthenticationError("a valid API key is required as a bearer token")
