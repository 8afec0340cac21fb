"""What the CLI reads from its environment: the SERVING_* settings and the admin token."""

import argparse
import os

from pydantic import ValidationError

from serving.core.errors import ServingError
from serving.core.settings import Settings

# The client's admin token for --url: kept out of the command line and so out of shell
# history. The server's own list of accepted tokens is SERVING_ADMIN_TOKENS.
ADMIN_TOKEN_ENV = "SERVING_ADMIN_TOKEN"


class SettingsError(ServingError):
    """A SERVING_* variable that does not parse; the CLI exits 2 with one line per variable."""

    code = "bad_setting"


def load_settings() -> Settings:
    """The settings, or SettingsError naming each bad variable, its value and what it takes."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError("; ".join(_problem(error) for error in exc.errors())) from None


def _problem(error: object) -> str:
    details = error if isinstance(error, dict) else {}
    location = details.get("loc") or ("?",)
    variable = "SERVING_" + str(location[0]).upper()
    return f"{variable}={details.get('input')!r}: {details.get('msg', 'invalid value')}"


def admin_token(args: argparse.Namespace) -> str | None:
    """--token when given, else the environment variable; None when neither is set."""
    token: str | None = args.token or os.environ.get(ADMIN_TOKEN_ENV)
    return token or None
