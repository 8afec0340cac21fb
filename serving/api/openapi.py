"""The OpenAPI document, with working example bodies built from the served models' manifests."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serving.api.schemas import predict_request_examples
from serving.registry.registry import ModelRegistry

_PREDICT_PATHS = ("/predict", "/models/{name}/predict")


def install_model_examples(app: FastAPI) -> None:
    """Replace app.openapi so /docs shows each served model's features and an example body.

    Rebuilt only when the set of served versions changes, so a hot swap updates the docs.
    """
    built: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        registry: ModelRegistry | None = getattr(app.state, "registry", None)
        manifests = [] if registry is None else registry.served_manifests()
        key = tuple((m.name, m.version) for m in manifests)
        if key not in built:
            built.clear()
            built[key] = _document(app, manifests)
        return built[key]

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _document(app: FastAPI, manifests: list[Any]) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    examples = predict_request_examples(manifests)
    features = "; ".join(f"{m.name} v{m.version}: {', '.join(m.feature_names)}" for m in manifests)
    for path in _PREDICT_PATHS:
        operation = schema["paths"].get(path, {}).get("post")
        if operation is None or not examples:
            continue
        content = operation["requestBody"]["content"]["application/json"]
        content["examples"] = examples if path == "/predict" else _without_model(examples)
        operation["description"] = f"Features of each served model: {features}."
    return schema


def _without_model(examples: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        key: {**example, "value": {k: v for k, v in example["value"].items() if k != "model"}}
        for key, example in examples.items()
    }
