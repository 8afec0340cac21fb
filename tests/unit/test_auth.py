"""Bearer-token parsing and the admin / API-key rules, without HTTP."""

import pytest

from serving.api.auth import bearer_token, is_allowed, require_admin, require_api_key
from serving.core.errors import AuthenticationError, ManagementDisabledError


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_is_read_only_from_the_bearer_scheme(
    header: str | None, token: str | None
) -> None:
    assert bearer_token(header) == token


def test_a_token_matches_only_an_identical_configured_token() -> None:
    allowed = ["first", "sécond"]

    assert is_allowed("first", allowed)
    assert is_allowed("sécond", allowed)
    assert not is_allowed("firs", allowed)
    assert not is_allowed("first ", allowed)
    assert not is_allowed("first", [])


def test_management_is_disabled_until_an_admin_token_is_configured() -> None:
    with pytest.raises(ManagementDisabledError):
        require_admin("Bearer anything", [])


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic admin"])
def test_admin_routes_refuse_missing_or_wrong_tokens(header: str | None) -> None:
    with pytest.raises(AuthenticationError):
        require_admin(header, ["admin"])


def test_admin_routes_accept_any_configured_token() -> None:
    require_admin("Bearer two", ["one", "two"])


def test_api_keys_are_not_needed_until_configured() -> None:
    require_api_key(None, [], ["admin"])


def test_api_key_routes_accept_api_keys_and_admin_tokens_only() -> None:
    require_api_key("Bearer key", ["key"], ["admin"])
    require_api_key("Bearer admin", ["key"], ["admin"])
    with pytest.raises(AuthenticationError):
        require_api_key("Bearer other", ["key"], ["admin"])
