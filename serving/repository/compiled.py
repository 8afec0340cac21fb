"""The compiled form of a version: which runtime serves it, and an ONNX Runtime session.

Loading an ONNX file runs no Python code from it (unlike unpickling): ONNX Runtime reads a
protobuf graph of known operators. So a server set to `SERVING_RUNTIME=onnx` can serve
models from publishers it would not let run code in its process.
"""

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime

from serving.core.settings import RuntimeMode
from serving.repository.manifest import ModelManifest

Runtime = Literal["sklearn", "onnx"]


__all__ = [
    "CompiledModel",
    "Runtime",
    "RuntimeChoice",
    "RuntimeMode",
    "choose_runtime",
    "session_threads",
]


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime that serves a version under a mode, or None when it cannot be served."""

    runtime: Runtime | None
    reason: str


def choose_runtime(manifest: ModelManifest, mode: RuntimeMode) -> RuntimeChoice:
    compiled = manifest.compiled
    has_compiled = compiled is not None and compiled.sha256 is not None
    why_not = _why_not_compiled(manifest)
    if mode == "sklearn":
        return RuntimeChoice("sklearn", "SERVING_RUNTIME=sklearn")
    if has_compiled:
        parity = compiled.parity if compiled is not None else None
        agreed = f"; agreed with scikit-learn on {parity.rows} rows" if parity else ""
        return RuntimeChoice("onnx", f"SERVING_RUNTIME={mode}: compiled form present{agreed}")
    if mode == "onnx":
        return RuntimeChoice(None, f"SERVING_RUNTIME=onnx and no compiled form: {why_not}")
    return RuntimeChoice("sklearn", f"no compiled form: {why_not}")


def _why_not_compiled(manifest: ModelManifest) -> str:
    if manifest.compiled is None:
        return "published before compiled forms existed"
    return manifest.compiled.reason or "none was published"


def session_threads() -> int:
    """Threads for one session: the share of the cores `serving serve` gives each worker
    (gunicorn_conf sets OMP_NUM_THREADS to cores // workers), else 1."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


class CompiledModel:
    """An ONNX Runtime session over a verified model.onnx: labels (or regression values)
    and, for classifiers, probabilities, in one run. Safe to call from several threads."""

    def __init__(self, data: bytes, threads: int) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            data, options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()]

    def run(
        self, matrix: npt.NDArray[np.float64], probabilities: bool
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64] | None]:
        wanted = self._outputs if probabilities else self._outputs[:1]
        results = self._session.run(wanted, {self._input: matrix})
        values = np.asarray(results[0])
        if values.ndim == 2 and values.shape[1] == 1:  # a regressor's single target
            values = values.ravel()
        proba = None
        if probabilities and len(results) > 1:
            proba = np.ascontiguousarray(results[1], dtype=np.float64)
        return np.ascontiguousarray(values), proba
