"""Request rate, latency percentiles and cache hit ratio, from real /metrics scrapes under load.

Starts Redis and `serving serve` (2 workers), runs three phases of load while scraping
/metrics every second, and draws what a Prometheus + Grafana setup would show.
    python -m bench.plot_metrics [--out docs/metrics.png]
"""

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no display, no global state

from bench.fixture import trained_server
from tests.load import LoadGenerator
from tests.metrics_text import Samples, scrape, total
from tests.redis_server import running_redis
from training.data import load_dataset

LATENCY = "http_request_duration_highr_seconds"
# (seconds, client threads, distinct bodies): warm-up, a repetitive peak, mostly-new rows
PHASES = ((12, 2, 40), (12, 6, 40), (12, 4, 4000))


@dataclass
class Point:
    at: float
    rate: float
    p50: float
    p90: float
    p99: float
    hit_ratio: float


def _bodies(count: int) -> list[dict[str, object]]:
    rows = load_dataset("breast_cancer").x_test.tolist()
    return [
        {
            "model": "breast_cancer",
            "instances": [[rows[i % len(rows)][0] + i * 1e-6, *rows[i % len(rows)][1:]]],
        }
        for i in range(count)
    ]


def _buckets(samples: Samples) -> list[tuple[float, float]]:
    found = [
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == f"{LATENCY}_bucket"
    ]
    return sorted(found)


def _quantile(q: float, before: Samples, after: Samples) -> float:
    """histogram_quantile() over the increase between two scrapes, as PromQL computes it."""
    increase = [
        (le, b - a) for (le, b), (_, a) in zip(_buckets(after), _buckets(before), strict=True)
    ]
    count = increase[-1][1]
    if count == 0:
        return float("nan")
    rank, lower, seen = q * count, 0.0, 0.0
    for le, cumulative in increase:
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - seen) / max(cumulative - seen, 1e-12)
        lower, seen = le, cumulative
    return lower


def _point(at: float, dt: float, before: Samples, after: Samples) -> Point:
    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    lookups = delta("serving_cache_lookups_total")
    p50, p90, p99 = (1000 * _quantile(q, before, after) for q in (0.5, 0.9, 0.99))
    hits = delta("serving_cache_lookups_total", result="hit")
    rate = delta("http_requests_total", handler="/predict") / dt
    return Point(at, rate, p50, p90, p99, hits / lookups if lookups else float("nan"))


def record(url: str) -> list[Point]:
    points, started = [], time.monotonic()
    previous, previous_at = scrape(url), started
    for seconds, threads, distinct in PHASES:
        load = LoadGenerator(url, _bodies(distinct), threads=threads, max_seconds=seconds + 5)
        load.start()
        phase_end = time.monotonic() + seconds
        while time.monotonic() < phase_end:
            time.sleep(1.0)
            now, samples = time.monotonic(), scrape(url)
            points.append(_point(now - started, now - previous_at, previous, samples))
            previous, previous_at = samples, now
        failed = [o for o in load.stop() if o.status != 200]
        assert not failed, f"{len(failed)} failed requests"
    return points


def draw(points: list[Point], out: Path) -> None:
    at = [p.at for p in points]
    figure = Figure(figsize=(9, 8))
    rate, latency, ratio = figure.subplots(3, 1, sharex=True)
    rate.plot(at, [p.rate for p in points], color="tab:blue")
    rate.set_ylabel("requests / s")
    rate.set_title("POST /predict, 2 gunicorn workers + Redis, scraped from /metrics every 1 s")
    for q, color in (("p50", "tab:green"), ("p90", "tab:orange"), ("p99", "tab:red")):
        latency.plot(at, [getattr(p, q) for p in points], label=q, color=color)
    latency.set_yscale("log")
    latency.set_ylabel("latency ms (log)")
    latency.legend(loc="upper left")
    ratio.plot(at, [p.hit_ratio for p in points], color="tab:purple")
    ratio.set_ylim(0, 1.05)
    ratio.set_ylabel("cache hit ratio")
    ratio.set_xlabel("seconds (phases: warm-up, repeated rows at peak, mostly new rows)")
    for axis in (rate, latency, ratio):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/metrics.png"))
    out = parser.parse_args().out
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_redis(Path(scratch)) as redis,
        trained_server(workers=2, SERVING_REDIS_URL=redis.url) as server,
    ):
        points = record(server.url)
    draw(points, out)
    print(f"wrote {out} from {len(points)} scrapes")


if __name__ == "__main__":
    main()
