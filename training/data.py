"""Bundled data sets, split into train and held-out parts (pure, explicitly seeded)."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.model_selection import train_test_split

from serving.repository.manifest import Task

SEED = 42
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class Dataset:
    name: str
    task: Task
    feature_names: list[str]
    x_train: npt.NDArray[np.float64]
    x_test: npt.NDArray[np.float64]
    y_train: npt.NDArray[Any]
    y_test: npt.NDArray[Any]


_LOADERS: dict[str, tuple[Callable[..., Any], Task]] = {
    "iris": (load_iris, "classification"),
    "breast_cancer": (load_breast_cancer, "classification"),
    "diabetes": (load_diabetes, "regression"),
}
DATASET_NAMES = tuple(_LOADERS)


def load_dataset(name: str, seed: int = SEED) -> Dataset:
    """Load a bundled data set (nothing is downloaded) and split it reproducibly."""
    loader, task = _LOADERS[name]
    bunch = loader()
    x, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    stratify = y if task == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=seed, stratify=stratify
    )
    names = [_snake_case(feature) for feature in bunch.feature_names]
    return Dataset(name, task, names, x_train, x_test, y_train, y_test)


def _snake_case(feature: str) -> str:
    """'sepal length (cm)' -> 'sepal_length_cm', so by-name rows have plain JSON keys."""
    return re.sub(r"[^a-z0-9]+", "_", feature.lower()).strip("_")
