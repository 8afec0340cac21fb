"""How much one inference request may hold.

Every count below is checked before any per-item work, so a body within
SERVING_MAX_BODY_BYTES costs time linear in its size whatever it holds. The limits are far
above what a model needs: a tabular model takes one tensor, or one per feature, and gives
at most two outputs.
"""

from collections.abc import Sized

from serving.core.errors import MalformedRequestError

MAX_INPUTS = 4096  # input tensors per request (one per feature for the widest model)
MAX_OUTPUTS = 64  # requested outputs per request
MAX_PARAMETERS = 64  # entries of any `parameters` object
MAX_NAME_LENGTH = 256  # characters of a tensor name
MAX_DIMENSIONS = 32  # entries of a shape (numpy itself stops at 64)


def check_count(items: Sized, limit: int, what: str) -> None:
    """MalformedRequestError (400 under /v2) when `items` holds more than `limit` entries."""
    if len(items) > limit:
        raise MalformedRequestError(f"{what} holds {len(items)} entries; at most {limit}")
