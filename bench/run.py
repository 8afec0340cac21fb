"""One command for the performance benchmark: ``python -m bench.run`` (see ``--help``).

For each target x model x rows (1, 32) x connections (1, 16, 64) it repeats short wrk runs and
reports the median requests/s, rows/s, p50 and p99; plus a 10,000-row body at 1 connection and
the same 10,000-row work in one process without HTTP. Every figure is of cache MISSES: the wrk
Lua script changes the body of every request. It prints a markdown table and the issue's target
ratios, and writes everything to .bench/results-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import WrkRun, body_template, render, run_wrk, wrk_threads
from bench.registry import (
    DEMO_MODELS,
    ModelInfo,
    RegistrySource,
    default_source,
    load_model_info,
    prepare_registry,
)
from bench.servers import (
    ALL_TARGETS,
    BENCH_DIR,
    FAIR_THREAD_ENV,
    MLSERVER_VENV,
    OURS_TARGETS,
    REPO_ROOT,
    TARGETS,
    LaunchOptions,
    Protocol,
    Server,
    predict_path,
    python_has_modules,
    resolve_serving_cmd,
    running,
)

HELP_EPILOG = """\
Load generation: wrk (Debian package). If it is missing the harness stops and says
`apt-get install wrk`; with --install-wrk (as root) it runs that itself. The only thing it
installs on its own is MLServer's virtualenv at .bench/mlserver-venv (mlserver==1.7.1,
mlserver-sklearn==1.7.1, uvloop<0.22, and this interpreter's scikit-learn/numpy/joblib versions
so the same model.joblib files load).

Fairness: servers and wrk share the machine's cores; nothing is pinned. wrk uses one thread
per connection up to --wrk-threads (default 2): -t1 at 1 connection, -t2 at 16 and 64. Every
server gets 2 workers (gunicorn workers / MLServer parallel_workers) and
OMP/OPENBLAS/MKL_NUM_THREADS=1. Targets are measured one after another (one server up at a time),
each point's repeats back to back; the medians are reported, min-max req/s shows the noise.

Targets: bare, mlserver, mlserver-batched, ours, ours-unbatched, ours-sklearn. ours* run the
production command `serving serve --workers 2 --host 127.0.0.1 --port PORT` (SERVING_MODEL_DIR
set; ours-unbatched adds SERVING_BATCHING=false, ours-sklearn SERVING_RUNTIME=sklearn); they are
skipped with a note when the `serving` command does not exist yet.
"""


@dataclass(frozen=True)
class Point:
    target: str
    model: str
    rows: int
    connections: int

    @property
    def key(self) -> str:
        return f"{self.target}|{self.model}|{self.rows}|{self.connections}"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    return [int(t) for t in _csv(text)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--targets",
        type=_csv,
        default=list(ALL_TARGETS),
        help=f"comma list of {','.join(ALL_TARGETS)} (default: all)",
    )
    p.add_argument("--models", type=_csv, default=list(DEMO_MODELS), help="comma list")
    p.add_argument("--rows", type=_ints, default=[1, 32], help="rows per body (default 1,32)")
    p.add_argument("--connections", type=_ints, default=[1, 16, 64], help="default 1,16,64")
    p.add_argument(
        "--big-rows",
        type=int,
        default=10_000,
        help="rows of the big-body point at 1 connection, 0 to skip (default 10000)",
    )
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="wrk runs per point (default 3)")
    p.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of untimed load per model before measuring (default 1)",
    )
    p.add_argument(
        "--wrk-threads",
        type=int,
        default=2,
        help="max wrk threads; wrk gets min(connections, this) (default 2)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="wrk request timeout seconds")
    p.add_argument(
        "--inproc-repeats",
        type=int,
        default=7,
        help="repeats of the in-process big-body baseline (default 7)",
    )
    p.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="scratch model registry (default .bench/models-<registry source>)",
    )
    p.add_argument(
        "--registry-source",
        choices=["local", "serving-train"],
        default=None,
        help="how to build a missing registry: `serving train --all` (default when the serving "
        "command exists) or train the demo models here (local)",
    )
    p.add_argument(
        "--serving-cmd",
        default=None,
        help="our server's console script (default: `serving` beside this Python)",
    )
    p.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra env for ours* (e.g. SERVING_CACHE_MAX_ENTRIES=0); repeatable",
    )
    p.add_argument(
        "--install-wrk",
        action="store_true",
        help="if wrk is missing and we are root: apt-get install -y wrk",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON (default .bench/results-<timestamp>.json)",
    )
    args = p.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        p.error(f"unknown targets {unknown}; known: {', '.join(ALL_TARGETS)}")
    return args


def ensure_wrk(install: bool) -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if install and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        "wrk is not installed: run `apt-get install wrk` (or pass --install-wrk as root)"
    )


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- bodies


class Bodies:
    """Template files for the Lua script, one per model x rows x protocol."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._cache: dict[tuple[str, int, str], tuple[Path, str, float]] = {}

    def get(self, model: ModelInfo, rows: int, protocol: Protocol) -> tuple[Path, str, float]:
        key = (model.name, rows, protocol)
        if key not in self._cache:
            template, base = body_template(model, rows, protocol)
            path = self.directory / f"{model.name}-{rows}-{protocol}.json"
            path.write_text(template)
            self._cache[key] = (path, template, base)
        return self._cache[key]


def check_answer(
    server: Server,
    protocol: Protocol,
    model: ModelInfo,
    rows: int,
    bodies: Bodies,
    timeout_s: float,
) -> None:
    """One request through urllib: status 200 and one prediction per row, else raise."""
    _, template, base = bodies.get(model, rows, protocol)
    req = urllib.request.Request(
        server.base_url + predict_path(protocol, model.name),
        data=render(template, base, 10**9),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    got = int(answer["outputs"][0]["shape"][0]) if protocol == "v2" else len(answer["predictions"])
    if got != rows:
        raise RuntimeError(f"{server.target}/{model.name}: {got} predictions for {rows} rows")


# --------------------------------------------------------------------------- measuring


def summarize(point: Point, runs: list[WrkRun]) -> dict[str, Any]:
    rps = [r.rps for r in runs]
    return {
        "target": point.target,
        "model": point.model,
        "rows": point.rows,
        "connections": point.connections,
        "rps": statistics.median(rps),
        "rows_per_s": statistics.median(rps) * point.rows,
        "p50_ms": statistics.median(r.p50_us for r in runs) / 1000,
        "p99_ms": statistics.median(r.p99_us for r in runs) / 1000,
        "rps_min": min(rps),
        "rps_max": max(rps),
        "errors": sum(r.errors for r in runs),
        "requests": sum(r.requests for r in runs),
        "runs": [r.to_dict() for r in runs],
    }


def measure_target(
    target: str,
    opts: LaunchOptions,
    models: list[ModelInfo],
    bodies: Bodies,
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
) -> None:
    protocol = TARGETS[target].protocol
    with running(target, opts) as server:
        log(f"{target} ready on {server.base_url} (log {server.log_path})")
        for model in models:
            path = predict_path(protocol, model.name)
            plan = [(rows, c) for rows in args.rows for c in args.connections]
            if args.big_rows:
                plan.append((args.big_rows, 1))
            for rows in sorted({r for r, _ in plan}):
                check_answer(server, protocol, model, rows, bodies, args.timeout)
            if args.warmup > 0:
                tfile, _, base = bodies.get(model, args.rows[0], protocol)
                run_wrk(
                    server.base_url,
                    path,
                    tfile,
                    base,
                    16,
                    args.warmup,
                    args.wrk_threads,
                    args.timeout,
                )
            for rows, conns in plan:
                point = Point(target, model.name, rows, conns)
                tfile, _, base = bodies.get(model, rows, protocol)
                load_before = os.getloadavg()[0]
                runs = [
                    run_wrk(
                        server.base_url,
                        path,
                        tfile,
                        base,
                        conns,
                        args.duration,
                        args.wrk_threads,
                        args.timeout,
                    )
                    for _ in range(args.repeats)
                ]
                s = summarize(point, runs)
                s["loadavg_1m_before"] = load_before
                results[point.key] = s
                log(
                    f"{target:16} {model.name:13} rows={rows:<5} c={conns:<3} "
                    f"{s['rps']:9.1f} req/s {s['rows_per_s']:11.1f} rows/s "
                    f"p50 {s['p50_ms']:8.2f} ms p99 {s['p99_ms']:8.2f} ms"
                    + (f"  ERRORS {s['errors']}" if s["errors"] else "")
                )


def measure_inproc(
    models: list[ModelInfo], bodies: Bodies, rows: int, repeats: int
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    env = {**os.environ, **FAIR_THREAD_ENV}
    for model in models:
        tfile, _, base = bodies.get(model, rows, "instances")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.inproc",
                str(model.path),
                str(tfile),
                repr(base),
                str(repeats),
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        res["rows_per_s"] = res["rows"] / res["median_s"]
        res["rows_per_s_tuned_gc"] = res["rows"] / res["median_tuned_gc_s"]
        out[model.name] = res
        log(
            f"in-process     {model.name:13} rows={rows:<5} {res['median_s'] * 1000:9.2f} ms "
            f"{res['rows_per_s']:11.1f} rows/s"
        )
    return out


# --------------------------------------------------------------------------- report


def markdown_table(
    results: dict[str, dict[str, Any]], inproc: dict[str, dict[str, Any]], big_rows: int
) -> str:
    lines = [
        "| target | model | rows | conns | req/s | rows/s | p50 ms | p99 ms "
        "| req/s min-max | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results.values():
        lines.append(
            f"| {s['target']} | {s['model']} | {s['rows']} | {s['connections']} "
            f"| {s['rps']:.1f} | {s['rows_per_s']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
            f"| {s['rps_min']:.1f}-{s['rps_max']:.1f} | {s['errors']} |"
        )
    for name, r in inproc.items():
        lines.append(
            f"| in-process (no HTTP) | {name} | {big_rows} | - | {1 / r['median_s']:.1f} "
            f"| {r['rows_per_s']:.0f} | {r['median_s'] * 1000:.2f} | - | - | - |"
        )
        lines.append(
            f"| in-process, server's GC threshold | {name} | {big_rows} | - "
            f"| {1 / r['median_tuned_gc_s']:.1f} | {r['rows_per_s_tuned_gc']:.0f} "
            f"| {r['median_tuned_gc_s'] * 1000:.2f} | - | - | - |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    label: str
    compute: Callable[[], float | None]
    op: str  # ">=" or "<="
    bound: float
    unit: str = ""
    is_target: bool = True


def checks(
    results: dict[str, dict[str, Any]], inproc: dict[str, dict[str, Any]], big_rows: int
) -> list[Check]:
    def get(target: str, model: str, rows: int, conns: int, field: str) -> float | None:
        s = results.get(Point(target, model, rows, conns).key)
        return None if s is None else float(s[field])

    def ratio(
        a: str, b: str, model: str, rows: int, conns: int, field: str = "rps"
    ) -> Callable[[], float | None]:
        def f() -> float | None:
            x, y = get(a, model, rows, conns, field), get(b, model, rows, conns, field)
            return None if x is None or y is None or y == 0 else x / y

        return f

    def p50_diff() -> float | None:
        x, y = get("ours", "iris", 1, 1, "p50_ms"), get("bare", "iris", 1, 1, "p50_ms")
        return None if x is None or y is None else x - y

    def vs_inproc(
        target: str, model: str, baseline: str = "rows_per_s"
    ) -> Callable[[], float | None]:
        def f() -> float | None:
            x = get(target, model, big_rows, 1, "rows_per_s")
            y = inproc.get(model, {}).get(baseline)
            return None if x is None or not y else x / float(y)

        return f

    out = [
        Check("iris 1row c64 ours/bare req/s", ratio("ours", "bare", "iris", 1, 64), ">=", 1.5),
        Check(
            "iris 1row c64 ours/mlserver req/s", ratio("ours", "mlserver", "iris", 1, 64), ">=", 3.0
        ),
        Check("iris 1row c1 p50 ours-bare", p50_diff, "<=", 0.5, " ms"),
        Check(
            "breast_cancer 1row c64 ours/ours-unbatched req/s",
            ratio("ours", "ours-unbatched", "breast_cancer", 1, 64),
            ">=",
            8.0,
        ),
        Check(
            "breast_cancer 1row c64 ours/mlserver-batched req/s",
            ratio("ours", "mlserver-batched", "breast_cancer", 1, 64),
            ">=",
            1.5,
        ),
        # The bare app leaves OpenMP at its default, which is what makes two
        # HistGradientBoosting workers collapse on two cores; the capped bare app is a reference.
        Check(
            "diabetes 1row c16 ours/bare-default-threads req/s",
            ratio("ours", "bare-default-threads", "diabetes", 1, 16),
            ">=",
            4.0,
        ),
        Check(
            "diabetes 1row c16 ours/bare req/s",
            ratio("ours", "bare", "diabetes", 1, 16),
            ">=",
            0.0,
            is_target=False,
        ),
    ]
    # The compiled runtime (ours serves the forest through ONNX Runtime; ours-sklearn does not).
    out += [
        Check(
            "breast_cancer 1row c1 p50 ours (compiled)",
            lambda: get("ours", "breast_cancer", 1, 1, "p50_ms"),
            "<=",
            1.0,
            " ms",
        ),
        Check(
            "breast_cancer 1row c64 ours/mlserver-batched req/s (compiled)",
            ratio("ours", "mlserver-batched", "breast_cancer", 1, 64),
            ">=",
            3.0,
        ),
        Check(
            "breast_cancer 1row c64 ours/ours-sklearn req/s",
            ratio("ours", "ours-sklearn", "breast_cancer", 1, 64),
            ">=",
            0.0,
            is_target=False,
        ),
    ]
    if big_rows:
        out += [
            Check(f"{m} {big_rows}rows c1 ours/in-process rows/s", vs_inproc("ours", m), ">=", 0.7)
            for m in DEMO_MODELS
        ]
        out += [
            Check(
                f"{m} {big_rows}rows c1 ours-sklearn/in-process rows/s",
                vs_inproc("ours-sklearn", m),
                ">=",
                0.0,
                is_target=False,
            )
            for m in DEMO_MODELS
        ]
        # reference lines (no target): how the baselines fare against the same in-process work
        out += [
            Check(
                f"{m} {big_rows}rows c1 {t}/in-process rows/s",
                vs_inproc(t, m),
                ">=",
                0.7,
                is_target=False,
            )
            for t in ("bare", "mlserver")
            for m in DEMO_MODELS
        ]
        # and ours against in-process work given the same collector threshold as our workers
        out += [
            Check(
                f"{m} {big_rows}rows c1 ours/in-process-same-gc rows/s",
                vs_inproc("ours", m, "rows_per_s_tuned_gc"),
                ">=",
                0.7,
                is_target=False,
            )
            for m in DEMO_MODELS
        ]
    out += [
        Check(
            "iris 1row c64 bare/mlserver req/s",
            ratio("bare", "mlserver", "iris", 1, 64),
            ">=",
            0.0,
            is_target=False,
        ),
        Check(
            "breast_cancer 1row c64 mlserver-batched/mlserver req/s",
            ratio("mlserver-batched", "mlserver", "breast_cancer", 1, 64),
            ">=",
            0.0,
            is_target=False,
        ),
        Check(
            "breast_cancer 1row c64 bare/mlserver-batched req/s",
            ratio("bare", "mlserver-batched", "breast_cancer", 1, 64),
            ">=",
            0.0,
            is_target=False,
        ),
    ]
    return out


def check_lines(all_checks: list[Check]) -> tuple[list[str], list[dict[str, Any]]]:
    lines: list[str] = []
    records: list[dict[str, Any]] = []
    for c in all_checks:
        value = c.compute()
        if value is None:
            verdict, shown = "NOT MEASURED", "n/a"
        else:
            ok = value >= c.bound if c.op == ">=" else value <= c.bound
            verdict = ("PASS" if ok else "FAIL") if c.is_target else "info"
            shown = f"{value:+.2f}{c.unit}" if c.unit else f"{value:.2f}"
        bound = f"(target {c.op} {c.bound:g}{c.unit})" if c.is_target else "(reference)"
        lines.append(f"{c.label} = {shown} {bound} {verdict}")
        records.append(
            {
                "label": c.label,
                "value": value,
                "op": c.op,
                "bound": c.bound,
                "unit": c.unit.strip(),
                "target": c.is_target,
                "verdict": verdict,
            }
        )
    return lines, records


def environment() -> dict[str, Any]:
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "wrk": wrk_version[0] if wrk_version else None,
        "bench_commit": commit,
        "thread_env": FAIR_THREAD_ENV,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
    }
    mods = ("uvloop", "httptools")
    env["server_python_modules"] = python_has_modules(sys.executable, mods)
    mlserver_python = MLSERVER_VENV / "bin" / "python"
    if mlserver_python.exists():
        env["mlserver_venv_modules"] = python_has_modules(mlserver_python, mods)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_wrk(args.install_wrk)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path: Path = args.out or BENCH_DIR / f"results-{stamp}.json"
    BENCH_DIR.mkdir(parents=True, exist_ok=True)

    serving_cmd = resolve_serving_cmd(args.serving_cmd)
    targets: list[str] = list(args.targets)
    skipped: dict[str, str] = {}
    if serving_cmd is None:
        for t in OURS_TARGETS:
            if t in targets:
                targets.remove(t)
                skipped[t] = "the `serving` command was not found (pass --serving-cmd)"
    for t, why in skipped.items():
        log(f"skipping {t}: {why}")

    source: RegistrySource = args.registry_source or default_source(serving_cmd is not None)
    model_dir = prepare_registry(
        (args.model_dir or BENCH_DIR / f"models-{source}").resolve(),
        source,
        serving_cmd or "serving",
    )
    models = [load_model_info(model_dir, name) for name in args.models]
    bodies = Bodies(BENCH_DIR / "bodies")
    ours_env = dict(kv.split("=", 1) for kv in args.ours_env)
    opts = LaunchOptions(
        model_dir=model_dir,
        models=models,
        log_dir=BENCH_DIR / "logs",
        serving_cmd=serving_cmd or "serving",
        ours_env=ours_env,
        workers=args.workers,
    )
    log(
        f"registry {model_dir}; targets {targets}; models {[m.name for m in models]}; "
        f"{args.repeats} x {args.duration:g}s per point; wrk threads: "
        + ", ".join(f"c{c}->t{wrk_threads(c, args.wrk_threads)}" for c in args.connections)
    )

    load_1m = os.getloadavg()[0]
    if load_1m > (os.cpu_count() or 1):
        log(
            f"WARNING: load average {load_1m:.1f} on {os.cpu_count()} cores before starting: "
            "other work is running, figures will be noisy (see loadavg_1m_before per point)"
        )
    inproc = (
        measure_inproc(models, bodies, args.big_rows, args.inproc_repeats) if args.big_rows else {}
    )
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for target in targets:
        try:
            measure_target(target, opts, models, bodies, args, results)
        except Exception as exc:  # one broken target must not lose the others' figures
            failures[target] = f"{type(exc).__name__}: {exc}"
            log(f"{target} FAILED: {failures[target]}")

    table = markdown_table(results, inproc, args.big_rows)
    lines, records = check_lines(checks(results, inproc, args.big_rows))
    print()
    print(
        "All figures are cache MISSES (every request body differs). Medians of "
        f"{args.repeats} runs x {args.duration:g}s; p50/p99 from wrk."
    )
    print()
    print(table)
    print()
    print("Targets (ratios from this run):")
    for line in lines:
        print("  " + line)
    for t, why in {**skipped, **failures}.items():
        print(f"  note: {t} not measured: {why}")

    doc = {
        "started": stamp,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": environment(),
        "targets": {t: TARGETS[t].description for t in targets},
        "skipped": skipped,
        "failures": failures,
        "cache": "miss: every request body differs (Lua perturbs the first feature)",
        "results": list(results.values()),
        "inprocess": inproc,
        "checks": records,
        "table_markdown": table,
    }
    with contextlib.suppress(FileExistsError):
        out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults written to {out_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
