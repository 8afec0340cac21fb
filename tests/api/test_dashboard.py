"""The Grafana dashboard only queries series that the app's /metrics actually exposes."""

import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "serving-dashboard.json"
_SERIES = re.compile(r"\b((?:serving|http)_[a-z_]+)")
_SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")


def _queried_series() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    return {name for expr in exprs for name in _SERIES.findall(expr)}


async def test_every_series_the_dashboard_queries_is_exposed(client: httpx.AsyncClient) -> None:
    await client.post("/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    scraped = (await client.get("/metrics")).text

    families = {family.name for family in text_string_to_metric_families(scraped)}
    exposed = {family + suffix for family in families for suffix in _SUFFIXES}
    queried = _queried_series()
    assert len(queried) >= 12
    assert queried <= exposed, queried - exposed
