"""Estimators that misbehave on purpose, published into test registries like any model.

They live in an importable module so the server's loader can unpickle them, in the test
process (ASGI tests) and in real server processes (the checkout is on their PYTHONPATH).
A row whose first value is a marker changes what `predict` does; every other row is scored
by a real logistic regression, so loading, the smoke test and ordinary requests work.
"""

import threading
import time
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from training.data import load_dataset
from training.publish import publish

HOLD = 1001.0  # a call holding such a row waits until GATE is set (ASGI tests only)
SLOW = 1002.0  # such a row costs SLOW_SECONDS of sleep, in any process
BREAK = 1003.0  # such a row raises a RuntimeError: an unexpected fault, not a refusal
REFUSE = 1004.0  # such a row raises a ValueError, as an estimator refusing a value does
SLOW_SECONDS = 0.05
GATE_BOUND_SECONDS = 10.0  # a hang guard: a held call gives up waiting after this

GATE = threading.Event()
ENTERED = threading.Event()  # set when a call holding a HOLD row is inside predict
CALLS: list[npt.NDArray[np.float64]] = []  # every matrix predict saw in this process


def reset() -> None:
    GATE.clear()
    ENTERED.clear()
    CALLS.clear()


class MarkedRows(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """A logistic regression on iris whose marked rows hold, sleep or break."""

    def fit(self, x: npt.NDArray[np.float64], y: npt.NDArray[Any]) -> Self:
        self.inner_ = LogisticRegression(max_iter=1000).fit(x, y)
        self.classes_ = self.inner_.classes_
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        _act_on_markers(x)
        predictions: npt.NDArray[Any] = self.inner_.predict(np.nan_to_num(x))
        return predictions

    def predict_proba(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        proba: npt.NDArray[np.float64] = self.inner_.predict_proba(np.nan_to_num(x))
        return proba


def _act_on_markers(x: npt.NDArray[np.float64]) -> None:
    CALLS.append(x.copy())
    first = x[:, 0]
    if (first == BREAK).any():
        raise RuntimeError("secret internal detail /srv/models/marked")
    if (first == REFUSE).any():
        raise ValueError(f"a value of {REFUSE} was never seen in training")
    if (first == SLOW).any():
        time.sleep(SLOW_SECONDS)
    if (first == HOLD).any():
        ENTERED.set()
        GATE.wait(GATE_BOUND_SECONDS)


def publish_marked(root: Any, key: Ed25519PrivateKey, name: str = "marked") -> int:
    """Trains MarkedRows on iris and publishes it as the next version of `name` under `root`."""
    data = load_dataset("iris")
    estimator = MarkedRows().fit(data.x_train, data.y_train)
    version = publish(
        estimator,
        name=name,
        root=root,
        signing_key=key,
        feature_names=data.feature_names,
        example=data.x_test[0].tolist(),
    )
    CALLS.clear()
    return version
