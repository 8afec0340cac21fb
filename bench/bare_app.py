"""The bare FastAPI baseline: what a plain, unoptimised FastAPI model server looks like.

One sync ``def predict`` (FastAPI runs it in its threadpool), a pydantic ``list[list[float]]``
body, FastAPI's default JSON response, the same model.joblib files as our server.

Run (the harness does this)::

    BENCH_MODEL_DIR=<registry> gunicorn bench.bare_app:app -k uvicorn_worker.UvicornWorker \
        -w 2 -b 127.0.0.1:PORT
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class PredictRequest(BaseModel):
    instances: list[list[float]]


def _latest_version(model_root: Path) -> Path:
    versions = [p for p in model_root.iterdir() if (p / "model.joblib").is_file()]
    return max(versions, key=lambda p: (int(p.name), p.name) if p.name.isdigit() else (-1, p.name))


def _load_models(model_dir: Path) -> dict[str, tuple[str, Any]]:
    models: dict[str, tuple[str, Any]] = {}
    for model_root in sorted(p for p in model_dir.iterdir() if p.is_dir()):
        if not any(model_root.glob("*/model.joblib")):
            continue
        vdir = _latest_version(model_root)
        models[model_root.name] = (vdir.name, joblib.load(vdir / "model.joblib"))
    return models


MODELS = _load_models(Path(os.environ.get("BENCH_MODEL_DIR", "models")))
app = FastAPI(title="bare baseline")


@app.get("/health/ready")
def ready() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/models/{name}/predict")
def predict(name: str, body: PredictRequest) -> dict[str, Any]:
    if name not in MODELS:
        raise HTTPException(status_code=404, detail=f"unknown model {name}")
    version, model = MODELS[name]
    predictions = model.predict(np.asarray(body.instances, dtype=np.float64))
    return {"model": name, "version": version, "predictions": predictions.tolist()}
