"""A client's values quoted back in error messages, cut short.

An error names what was wrong, but never echoes a whole body back: a 10 MB string in a
feature cell, or a thousand unknown keys, give a message of a few hundred characters.
"""

_SHOWN_CHARACTERS = 80
_SHOWN_NAMES = 10


def shown(value: object) -> str:
    """`repr(value)`, cut short; a list or object is named, not printed."""
    text = type(value).__name__ if isinstance(value, list | dict) else repr(value)
    if len(text) <= _SHOWN_CHARACTERS:
        return text
    return f"{text[:_SHOWN_CHARACTERS]}... ({len(text)} characters)"


def shown_names(names: list[str]) -> str:
    """The first few names, each cut short, and how many more there are."""
    listed = ", ".join(shown(name) for name in names[:_SHOWN_NAMES])
    more = len(names) - _SHOWN_NAMES
    return f"[{listed}]" if more <= 0 else f"[{listed}, and {more} more]"
