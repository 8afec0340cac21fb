"""Model and alias names: the one check every entry point (HTTP, CLI, the disk) goes through.

A name is a folder on disk and part of URLs and cache keys, so it is matched whole
(`fullmatch`: "iris\\n" is not "iris"). An alias never reads as a version number.
"""

import re

from serving.core.errors import InvalidInputError, ModelNotFoundError
from serving.core.quoting import shown

_NAME = r"[a-z0-9][a-z0-9_-]{0,63}"
NAME_PATTERN = rf"^{_NAME}$"  # for pydantic fields, whose `$` is the end of the text
_NAME_RE = re.compile(_NAME)
_VERSION_RE = re.compile(r"[0-9]{1,18}")  # int() of thousands of digits raises


def is_valid_name(name: object) -> bool:
    """A model or alias name: lowercase letters, digits, '-' and '_', at most 64 of them."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def is_version_number(text: str) -> bool:
    """ASCII digits that int() reads as a version (not "²", not ten thousand digits)."""
    return _VERSION_RE.fullmatch(text) is not None


def check_model_name(name: str) -> None:
    """No model can have an invalid name, so one is unknown (404), whatever asked for it."""
    if not is_valid_name(name):
        raise ModelNotFoundError(f"unknown model {shown(name)}: not a valid model name")


def check_alias_name(alias: str) -> None:
    """422 for a name no alias may have: invalid, or all digits (it would read as a version)."""
    if not is_valid_name(alias) or alias.isdigit():
        raise InvalidInputError(
            f"invalid alias {shown(alias)}: use lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit, at most 64, and not only digits"
        )
