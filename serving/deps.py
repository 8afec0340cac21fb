"""Typed dependencies: the only reader of app.state."""

from typing import Annotated

from fastapi import Depends, Request

from serving.predictor import Predictor
from serving.registry import ModelRegistry
from serving.settings import Settings
from serving.store import ModelStore


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # annotated: app.state is Any
    return settings


def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
