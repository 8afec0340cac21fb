"""The split decision: which alias a request that names no version goes to. Pure, no I/O.

A routing key is hashed with BLAKE2b (not Python's `hash()`, which is salted per process)
into a bucket 0..99, so the same key gives the same bucket in every worker, every replica
and after restarts. Buckets are handed out in a fixed order: every alias other than
`production` by name, then `production` last. Raising a canary's weight from 10 to 20
therefore only moves keys from `production` into the canary, never the other way round.
"""

import hashlib
import random
from collections.abc import Callable, Mapping

from serving.repository.aliases import DEFAULT_ALIAS
from serving.repository.traffic import TOTAL_WEIGHT

RandomBucket = Callable[[], int]


def key_bucket(routing_key: str) -> int:
    """0..99, the same for the same key everywhere, always."""
    digest = hashlib.blake2b(routing_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % TOTAL_WEIGHT


def random_bucket() -> int:
    return random.randrange(TOTAL_WEIGHT)


def arm_order(weights: Mapping[str, int]) -> list[str]:
    return sorted(weights, key=lambda alias: (alias == DEFAULT_ALIAS, alias))


def split_alias(weights: Mapping[str, int], routing_key: str | None) -> str | None:
    """The alias a request naming no version goes to; None for the default version."""
    # One arm (the usual case): no hashing, no drawing.
    alias = next(iter(weights)) if len(weights) == 1 else choose_alias(weights, routing_key)
    return None if alias == DEFAULT_ALIAS else alias


def choose_alias(
    weights: Mapping[str, int],
    routing_key: str | None,
    draw: RandomBucket = random_bucket,
) -> str:
    """The alias whose share of 0..99 holds the request's bucket. `weights` sum to 100."""
    bucket = key_bucket(routing_key) if routing_key is not None else draw()
    upper = 0
    for alias in arm_order(weights):
        upper += weights[alias]
        if bucket < upper:
            return alias
    raise ValueError(f"weights {dict(weights)} do not cover bucket {bucket}")
