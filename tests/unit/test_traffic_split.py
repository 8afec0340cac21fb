"""The split decision: stable buckets, shares within a point of the weights, monotone ramps."""

from collections import Counter

import pytest
from pydantic import ValidationError

from serving.registry.traffic import choose_alias, key_bucket, split_alias
from serving.repository.traffic import TrafficTable

_KEYS = [f"customer-{i}" for i in range(10_000)]


def test_a_key_has_the_same_bucket_in_every_process_and_release() -> None:
    # Recorded once: a change here moves every caller's arm, so it must be deliberate.
    assert [key_bucket(key) for key in ("alice", "bob", "customer-42", "")] == [29, 42, 54, 76]


def test_keys_spread_over_the_arms_within_a_point_of_the_weights() -> None:
    weights = {"production": 90, "canary": 10}
    shares = Counter(choose_alias(weights, key) for key in _KEYS)

    assert abs(shares["canary"] / len(_KEYS) - 0.10) < 0.01
    assert abs(shares["production"] / len(_KEYS) - 0.90) < 0.01


def test_raising_a_canary_only_moves_keys_from_production_into_it() -> None:
    before = {
        key for key in _KEYS if choose_alias({"production": 90, "canary": 10}, key) == "canary"
    }
    after = {
        key for key in _KEYS if choose_alias({"production": 80, "canary": 20}, key) == "canary"
    }

    assert before < after


def test_without_a_key_the_draw_decides() -> None:
    weights = {"production": 90, "canary": 10}
    chosen = [choose_alias(weights, None, iter([bucket]).__next__) for bucket in (0, 9, 10, 99)]
    assert chosen == ["canary", "canary", "production", "production"]


def test_production_means_the_default_version() -> None:
    assert split_alias({"production": 100}, "anyone") is None
    assert split_alias({"canary": 100}, None) == "canary"
    assert split_alias({"production": 0, "canary": 100}, "anyone") == "canary"


@pytest.mark.parametrize(
    "weights",
    [{"production": 99}, {"production": 50.0, "canary": 50}, {"production": True, "c": 99}],
)
def test_a_table_refuses_weights_that_are_not_integers_summing_to_100(
    weights: dict[str, object],
) -> None:
    with pytest.raises(ValidationError):
        TrafficTable.model_validate({"weights": weights})
