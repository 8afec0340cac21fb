"""One scikit-learn Pipeline builder per demo model, each explicitly seeded."""

from collections.abc import Callable

from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from training.data import SEED


def _iris() -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=1000))])


def _breast_cancer() -> Pipeline:
    # n_jobs=1: a serving worker is one process per core; joblib threads would oversubscribe.
    forest = RandomForestClassifier(n_estimators=200, random_state=SEED, n_jobs=1)
    return Pipeline([("classify", forest)])


def _diabetes() -> Pipeline:
    return Pipeline([("regress", HistGradientBoostingRegressor(random_state=SEED))])


BUILDERS: dict[str, Callable[[], Pipeline]] = {
    "iris": _iris,
    "breast_cancer": _breast_cancer,
    "diabetes": _diabetes,
}


def build_pipeline(name: str) -> Pipeline:
    return BUILDERS[name]()
