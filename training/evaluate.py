"""Held-out metrics for a fitted estimator."""

from typing import Any

from sklearn import metrics

from training.data import Dataset


def evaluate(estimator: Any, data: Dataset) -> dict[str, float]:
    predicted = estimator.predict(data.x_test)
    if data.task == "classification":
        return {
            "accuracy": float(metrics.accuracy_score(data.y_test, predicted)),
            "f1_macro": float(metrics.f1_score(data.y_test, predicted, average="macro")),
        }
    return {
        "r2": float(metrics.r2_score(data.y_test, predicted)),
        "mae": float(metrics.mean_absolute_error(data.y_test, predicted)),
        "rmse": float(metrics.root_mean_squared_error(data.y_test, predicted)),
    }
