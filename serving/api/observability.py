"""Wires tracing, drift counting and the payload log into the app and its lifespan.

Each is off unless configured: tracing by the OTEL_* variables, drift by a manifest profile
(and SERVING_DRIFT_WINDOW not 0), the payload log by SERVING_PAYLOAD_LOG.
"""

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from prometheus_client import CollectorRegistry

from serving.core.metrics import multiprocess_dir
from serving.core.settings import Settings
from serving.core.tracing import Tracing
from serving.dataplane.drift import DriftCollector, DriftMonitor
from serving.dataplane.drift_window import DriftWindow
from serving.dataplane.payload_log import PayloadLog
from serving.dataplane.payload_sinks import sink_from_url


@dataclass
class Observability:
    tracing: Tracing
    drift_window: DriftWindow
    drift_collector: DriftCollector
    payload_log: PayloadLog | None
    drift: DriftMonitor | None = None  # set while the lifespan runs

    @classmethod
    def build(cls, settings: Settings, registry: CollectorRegistry) -> "Observability":
        """No I/O: the sink's client connects on first use, the drift files open in workers."""
        payload_log = None
        if settings.payload_log:
            sink = sink_from_url(settings.payload_log)
            payload_log = PayloadLog(sink, settings.payload_sample, registry)
        window = DriftWindow.parse(settings.drift_window)
        return cls(Tracing(), window, DriftCollector(), payload_log)

    @asynccontextmanager
    async def running(self, tasks: TaskGroup) -> AsyncIterator[None]:
        """In each worker, after the fork: the exporter thread, the drift files and the
        payload writer belong to the process that serves."""
        self.tracing.start()
        own_directory = None
        if self.drift_window.is_enabled:
            directory = multiprocess_dir()
            if directory is None:  # one process: a private directory, removed at the end
                directory = own_directory = Path(tempfile.mkdtemp(prefix="serving-drift-"))
            self.drift = DriftMonitor(directory, self.drift_window)
            self.drift_collector.directory = directory
            tasks.start_soon(self.drift.run)
        if self.payload_log is not None:
            tasks.start_soon(self.payload_log.run)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop(own_directory)

    async def _stop(self, own_directory: Path | None) -> None:
        if self.drift is not None:
            await self.drift.flush()
            self.drift.close()
            self.drift = None
        self.drift_collector.close()
        if own_directory is not None:
            self.drift_collector.directory = None
            shutil.rmtree(own_directory, ignore_errors=True)
        if self.payload_log is not None:
            await self.payload_log.aclose()
        await anyio.to_thread.run_sync(self.tracing.shutdown)
