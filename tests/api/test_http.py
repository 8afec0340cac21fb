"""HTTP behaviour around the routes: CORS, request ids, logs."""

import json
import logging

import httpx
import pytest

from serving.core.logging import JsonFormatter
from tests.conftest import ClientFactory, SettingsFactory

PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}


async def test_no_cors_headers_unless_origins_are_configured(client: httpx.AsyncClient) -> None:
    answer = await client.options("/predict", headers=PREFLIGHT)

    assert "access-control-allow-origin" not in answer.headers


async def test_configured_origins_get_cors_headers_and_others_do_not(
    client_for: ClientFactory, settings_for: SettingsFactory
) -> None:
    async with client_for(settings_for(cors_origins=["https://app.example"])) as client:
        allowed = await client.options("/predict", headers=PREFLIGHT)
        other = await client.options(
            "/predict", headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )

    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


async def test_one_json_log_line_per_request_with_model_version_and_status(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="serving.access"):
        await client.post(
            "/models/iris/predict",
            json={"instances": [[5.1, 3.5, 1.4, 0.2]]},
            headers={"X-Request-ID": "req-42"},
        )

    lines = [r for r in caplog.records if r.name == "serving.access"]
    assert len(lines) == 1
    fields = lines[0].__dict__
    assert (fields["request_id"], fields["model"], fields["version"]) == ("req-42", "iris", 1)
    assert (fields["status"], fields["cache"]) == (200, "MISS")
    assert fields["duration_ms"] > 0


def test_the_log_formatter_writes_one_json_object_per_line() -> None:
    record = logging.makeLogRecord({"msg": "request", "levelname": "INFO", "model": "iris"})

    line = JsonFormatter().format(record)

    assert "\n" not in line
    assert json.loads(line)["model"] == "iris"
