"""The demo model registry the benchmark serves, built in a scratch directory.

Layout (the server's contract): ``<dir>/<name>/<version>/model.joblib`` and
``<dir>/<name>/<version>/manifest.json``.

``prepare_registry`` is the single switch point: today it trains the three demo models itself
(``source="local"``); once ``serving train --all`` exists, ``source="serving-train"`` runs it with
``SERVING_MODEL_DIR`` pointing at the scratch directory instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DEMO_MODELS: tuple[str, ...] = ("iris", "breast_cancer", "diabetes")
VERSION = "1"
SEED = 0

RegistrySource = Literal["local", "serving-train"]


def default_source(serving_available: bool) -> RegistrySource:
    """``serving train --all`` once our trainer exists, else the local stand-in."""
    return "serving-train" if serving_available else "local"


@dataclass(frozen=True)
class ModelInfo:
    """What the harness needs to know about one served model."""

    name: str
    version: str
    n_features: int
    path: Path  # the model.joblib file
    rows: list[list[float]]  # real rows from the dataset, used to build request bodies


def _build_local(model_dir: Path) -> None:
    # Imported here: the harness process itself stays light when the registry already exists.
    import joblib
    from sklearn import datasets
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    loaders: dict[str, tuple[Callable[..., Any], str, Callable[[], Any]]] = {
        "iris": (
            datasets.load_iris,
            "classification",
            lambda: Pipeline(
                [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]
            ),
        ),
        "breast_cancer": (
            datasets.load_breast_cancer,
            "classification",
            lambda: Pipeline(
                [
                    ("scale", StandardScaler()),
                    ("clf", RandomForestClassifier(n_estimators=200, random_state=SEED)),
                ]
            ),
        ),
        "diabetes": (
            datasets.load_diabetes,
            "regression",
            lambda: HistGradientBoostingRegressor(random_state=SEED),
        ),
    }
    for name, (load, task, make) in loaders.items():
        bunch = load()
        x, y = bunch.data, bunch.target
        est = make()
        est.fit(x, y)
        out = model_dir / name / VERSION
        out.mkdir(parents=True, exist_ok=True)
        joblib.dump(est, out / "model.joblib")
        manifest = {
            "name": name,
            "version": VERSION,
            "n_features": int(x.shape[1]),
            "features": [{"name": str(f), "dtype": "float64"} for f in bunch.feature_names],
            "task": task,
            "example": [float(v) for v in x[0]],
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _build_with_serving_train(model_dir: Path, serving_cmd: str) -> None:
    env = dict(os.environ, SERVING_MODEL_DIR=str(model_dir))
    subprocess.run([serving_cmd, "train", "--all"], env=env, check=True)


def _registry_complete(model_dir: Path) -> bool:
    return all(any((model_dir / n).glob("*/model.joblib")) for n in DEMO_MODELS)


def prepare_registry(
    model_dir: Path, source: RegistrySource = "local", serving_cmd: str = "serving"
) -> Path:
    """Make sure ``model_dir`` holds the demo models; build them if missing. Returns model_dir."""
    model_dir.mkdir(parents=True, exist_ok=True)
    if not _registry_complete(model_dir):
        if source == "serving-train":
            _build_with_serving_train(model_dir, serving_cmd)
        else:
            _build_local(model_dir)
    if not _registry_complete(model_dir):
        raise RuntimeError(f"model registry at {model_dir} is incomplete after building it")
    return model_dir


def _dataset_rows(name: str) -> list[list[float]]:
    from sklearn import datasets

    load: Callable[[], Any] = {
        "iris": datasets.load_iris,
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
    }[name]
    return [[float(v) for v in row] for row in load().data]


def _version_key(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (-1, v)


def load_model_info(model_dir: Path, name: str) -> ModelInfo:
    """Newest version of ``name`` in the registry, plus dataset rows for request bodies."""
    versions = sorted(
        (p for p in (model_dir / name).iterdir() if (p / "model.joblib").is_file()),
        key=lambda p: _version_key(p.name),
    )
    if not versions:
        raise FileNotFoundError(f"no model.joblib under {model_dir / name}")
    vdir = versions[-1]
    manifest = json.loads((vdir / "manifest.json").read_text())
    n_features = int(manifest["n_features"])
    rows = _dataset_rows(name) if name in DEMO_MODELS else [list(map(float, manifest["example"]))]
    if len(rows[0]) != n_features:
        raise ValueError(f"{name}: dataset rows have {len(rows[0])} features, not {n_features}")
    return ModelInfo(
        name=name,
        version=str(manifest.get("version", vdir.name)),
        n_features=n_features,
        path=vdir / "model.joblib",
        rows=rows,
    )
