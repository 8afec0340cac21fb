"""Training profiles, binning and the PSI: the same cuts at publish time and in the server."""

import numpy as np
import pytest
from pydantic import ValidationError

from serving.repository.profile import FeatureProfile, bin_counts, profile_of, psi
from training.data import load_dataset


def _drift(train: np.ndarray, live: np.ndarray) -> list[float]:
    profile = profile_of(train)
    width = max(feature.bins for feature in profile)
    counts = bin_counts(live, profile, width)
    return [psi(counts[i], feature) for i, feature in enumerate(profile)]


def test_training_rows_fill_ten_bins_of_about_a_tenth_each() -> None:
    rows = np.random.default_rng(0).normal(size=(10_000, 2))

    profile = profile_of(rows)

    assert all(len(feature.edges) == 9 for feature in profile)
    assert all(abs(share - 0.1) < 0.01 for feature in profile for share in feature.shares[:-1])
    assert all(feature.shares[-1] == 0.0 for feature in profile)  # no non-finite values


def test_held_out_rows_of_the_same_data_drift_little_and_a_shifted_feature_a_lot() -> None:
    data = load_dataset("breast_cancer")
    shifted = data.x_test.copy()
    shifted[:, 3] += 3 * data.x_train[:, 3].std()

    unchanged = _drift(data.x_train, data.x_test)
    moved = _drift(data.x_train, shifted)

    assert max(unchanged) < 0.25
    assert moved[3] > 1.0
    assert moved[:3] == unchanged[:3]


def test_a_binary_feature_gets_two_bins_and_missing_values_their_own() -> None:
    train = np.array([[0.0], [1.0], [0.0], [1.0]])
    live = np.array([[0.0], [np.nan], [np.inf], [1.0]])

    (feature,) = profile_of(train)
    counts = bin_counts(live, [feature], feature.bins)

    assert feature.edges == [0.0, 1.0]
    assert feature.shares == [0.0, 0.5, 0.5, 0.0]
    assert counts.tolist() == [[0, 1, 1, 2]]


@pytest.mark.parametrize(
    "fields",
    [
        {"edges": [1.0, 0.0], "shares": [0.25, 0.25, 0.5, 0.0]},  # not increasing
        {"edges": [0.0], "shares": [0.5, 0.5]},  # the non-finite bin is missing
        {"edges": [0.0], "shares": [0.5, 0.6, 0.0]},  # shares sum above 1
        {"edges": [float("nan")], "shares": [0.5, 0.5, 0.0]},
        {"edges": list(range(64)), "shares": [1.0] + [0.0] * 65},  # more than 63 edges
    ],
)
def test_a_malformed_profile_is_refused(fields: dict[str, list[float]]) -> None:
    with pytest.raises(ValidationError):
        FeatureProfile.model_validate(fields)


def test_psi_is_zero_for_the_training_shares_and_grows_with_the_shift() -> None:
    train = np.random.default_rng(1).normal(size=(20_000, 1))
    live = np.random.default_rng(2).normal(size=(20_000, 1))

    same, one_sd, three_sd = (_drift(train, live + shift)[0] for shift in (0.0, 1.0, 3.0))

    assert same < 0.01
    assert 0.25 < one_sd < three_sd
