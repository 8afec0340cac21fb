"""Bearer-token checks: admin tokens guard management, API keys guard predictions and reads.

Pure functions over the Authorization header and the configured tokens; deps.py turns them
into FastAPI dependencies. Tokens are compared with hmac.compare_digest against every
configured token, with no early exit, so timing reveals neither a token nor which one matched.
"""

import hmac
from collections.abc import Sequence

from serving.core.errors import AuthenticationError, ManagementDisabledError


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def is_allowed(token: str, allowed: Sequence[str]) -> bool:
    presented = token.encode()
    matched = False
    for candidate in allowed:
        matched |= hmac.compare_digest(presented, candidate.encode())
    return matched


def require_admin(authorization: str | None, admin_tokens: Sequence[str]) -> None:
    """403 while management is switched off (no token configured); 401 without a valid token."""
    if not admin_tokens:
        raise ManagementDisabledError(
            "the management API is disabled: no admin token is configured (SERVING_ADMIN_TOKENS)"
        )
    _require(authorization, admin_tokens, "an admin token")


def require_api_key(
    authorization: str | None, api_keys: Sequence[str], admin_tokens: Sequence[str]
) -> None:
    """Open while no API key is configured; otherwise an API key or an admin token is needed.

    Admin tokens are accepted too, so whoever may manage models may also read and score them.
    """
    if not api_keys:
        return
    _require(authorization, [*api_keys, *admin_tokens], "an API key")


def _require(authorization: str | None, allowed: Sequence[str], what: str) -> None:
    token = bearer_token(authorization)
    if token is None:
        raise AuthenticationError(f"missing credentials: send `Authorization: Bearer <{what}>`")
    if not is_allowed(token, allowed):
        raise AuthenticationError(f"invalid credentials: the bearer token is not {what}")
