"""skops artifacts: loaded only when every type they name is on the server's allow-list.

The list lives here, in the server, never in the file: a skops file that names any other
type is refused before anything in it is constructed.
"""

from typing import Any

from skops.io import get_untrusted_types, loads

from serving.core.errors import ArtifactRejectedError

TRUSTED_SKOPS_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn.utils._bunch.Bunch",
        "numpy.dtype",
        "builtins.slice",
    }
)


def load_skops(artifact: bytes) -> Any:
    """Refuse the file if it names a type outside TRUSTED_SKOPS_TYPES; otherwise load it."""
    untrusted = set(get_untrusted_types(data=artifact))
    refused = sorted(untrusted - TRUSTED_SKOPS_TYPES)
    if refused:
        raise ArtifactRejectedError(f"skops artifact uses types outside the allow-list: {refused}")
    return loads(artifact, trusted=sorted(untrusted))
