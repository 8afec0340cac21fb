"""gRPC benchmark: our gRPC, our REST /v2 and MLServer's gRPC, side by side in one run.

    python -m bench.grpc_run                       # iris and breast_cancer, 1 and 32 rows,
                                                   # 1 and 64 concurrent calls, 3 x 5 s each
    python -m bench.grpc_run --help

Our server (`serving serve --workers 2`, gRPC on a free port) answers both of its protocols
from one process tree, so their runs alternate within each point (gRPC first in odd repeats,
REST first in even ones); MLServer 1.7.1 (`parallel_workers: 2`, .bench/mlserver-venv) runs
next, and `--rounds 2` repeats the pair in the order ours, MLServer, ours, MLServer.
Every request is a cache miss; the load generator is bench/grpc_load.py, whose CPU use is
reported per point. Results go to .bench/grpc-results-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from bench.grpc_load import LoadSpec, ProcessResult, Template, grpc_template, run
from bench.loadgen import PLACEHOLDER, body_rows, body_template
from bench.proc_cpu import tree_cpu_seconds
from bench.registry import ModelInfo, load_model_info, prepare_registry
from bench.servers import BENCH_DIR, LaunchOptions, free_port, resolve_serving_cmd, running
from serving.grpcapi.protocol import open_inference_pb2 as pb

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
SENTINEL = 1234.567890123456789  # marks the perturbed value in a serialised request
_K_OFFSETS = itertools.count(0, 10_000_000)
# Only the labels, from every server: MLServer's scikit-learn runtime answers `predict` alone
# unless asked, and ours would otherwise add `predict_proba`, a second pass over the forest.
OUTPUT = "predict"  # every process of every run: its own k range


@dataclass(frozen=True)
class Point:
    target: str  # ours-grpc, ours-rest-v2, mlserver-grpc
    model: str
    rows: int
    concurrency: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="iris,breast_cancer")
    p.add_argument("--rows", default="1,32")
    p.add_argument("--concurrency", default="1,64")
    p.add_argument("--duration", type=float, default=5.0, help="timed seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="untimed seconds before each run")
    p.add_argument("--repeats", type=int, default=3, help="runs per point and round")
    p.add_argument("--rounds", type=int, default=1, help="ours then MLServer, this many times")
    p.add_argument("--client-processes", type=int, default=2, help="load processes at c > 1")
    p.add_argument("--servers", default="ours,mlserver")
    return p.parse_args(argv)


def grpc_request(model: ModelInfo, rows: int) -> Template:
    """ModelInfer of one raw FP64 tensor [rows, n_features] (tritonclient's default form)."""
    data = np.array(body_rows(model, rows), dtype="<f8")
    base = float(data[0, 0])
    data[0, 0] = SENTINEL
    request = pb.ModelInferRequest(model_name=model.name)
    request.inputs.add(name="input-0", datatype="FP64", shape=list(data.shape))
    request.raw_input_contents.append(data.tobytes())
    request.outputs.add(name=OUTPUT)
    return grpc_template(request.SerializeToString(), SENTINEL, base)


def rest_request(model: ModelInfo, rows: int) -> Template:
    """The same tensor as V2 JSON (the protocol's canonical REST body)."""
    body, base = body_template(model, rows, "v2")
    body = body.removesuffix("}") + f',"outputs":[{{"name":"{OUTPUT}"}}]}}'
    before, after = body.split(PLACEHOLDER)
    return Template(before.encode(), after.encode(), base)


def check_grpc(port: int, model: ModelInfo, rows: int) -> None:
    """One typed-out call: status OK and one prediction per row, before any timing."""
    request = pb.ModelInferRequest.FromString(grpc_request(model, rows).render("grpc", 0))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            INFER_METHOD,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        answer: pb.ModelInferResponse = call(request, timeout=30)
    assert answer.outputs and answer.outputs[0].shape[0] == rows, answer


def wait_grpc_ready(port: int, models: Sequence[ModelInfo], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            for model in models:
                check_grpc(port, model, 1)
            return
        except (grpc.RpcError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def measure(kind: str, port: int, path: str, template: Template, concurrency: int,
            args: argparse.Namespace, server_pid: int) -> dict[str, Any]:  # fmt: skip
    processes = 1 if concurrency == 1 else min(args.client_processes, concurrency)
    specs = [
        LoadSpec(
            kind="grpc" if kind == "grpc" else "http",
            host="127.0.0.1",
            port=port,
            path=path,
            template=template,
            streams=concurrency // processes + (i < concurrency % processes),
            warmup_s=args.warmup,
            duration_s=args.duration,
            first_k=next(_K_OFFSETS),
        )
        for i in range(processes)
    ]
    cpu_before = tree_cpu_seconds(server_pid)
    results = run(specs)
    server_cpu = tree_cpu_seconds(server_pid) - cpu_before
    figures = summarise(results)
    all_requests = sum(r.all_requests for r in results)
    figures["server_cpu_us_per_request"] = 1e6 * server_cpu / all_requests if all_requests else 0
    return figures


def summarise(results: list[ProcessResult]) -> dict[str, Any]:
    seconds = max(r.seconds for r in results)
    latencies = sorted(itertools.chain.from_iterable(r.latencies_us for r in results))
    requests = sum(r.requests for r in results)
    return {
        "requests": requests,
        "errors": sum(r.errors for r in results),
        "first_error": next((r.first_error for r in results if r.first_error), ""),
        "rps": requests / seconds if seconds else 0.0,
        "p50_us": latencies[len(latencies) // 2] if latencies else 0,
        "p99_us": latencies[int(len(latencies) * 0.99)] if latencies else 0,
        "client_cpu_cores": sum(r.cpu_seconds for r in results) / seconds,
        "client_max_process_cpu": max(r.cpu_seconds / r.seconds for r in results),
    }


@contextmanager
def server(name: str, opts: LaunchOptions, grpc_port: int) -> Iterator[tuple[int, int, int]]:
    """(HTTP port, gRPC port, pid) of a running server of ours or MLServer's."""
    target = "ours" if name == "ours" else "mlserver"
    with running(target, opts) as started:
        port = grpc_port if name == "ours" else started.extra_ports[0]
        wait_grpc_ready(port, opts.models)
        yield started.port, port, started.proc.pid


def measure_server(name: str, opts: LaunchOptions, args: argparse.Namespace,
                   runs: dict[Point, list[dict[str, Any]]]) -> None:  # fmt: skip
    """Every point of one server; ours alternates its two protocols within each point."""
    grpc_port = int(opts.ours_env["SERVING_GRPC_PORT"])
    kinds = ["grpc", "rest"] if name == "ours" else ["grpc"]
    with server(name, opts, grpc_port) as ports:
        for model, rows in itertools.product(opts.models, _ints(args.rows)):
            bodies = {"grpc": grpc_request(model, rows), "rest": rest_request(model, rows)}
            check_grpc(ports[1], model, rows)
            for concurrency, repeat in itertools.product(
                _ints(args.concurrency), range(args.repeats)
            ):
                for kind in kinds if repeat % 2 == 0 else kinds[::-1]:
                    target = f"{name}-grpc" if kind == "grpc" else "ours-rest-v2"
                    point = Point(target, model.name, rows, concurrency)
                    figures = _measure_kind(kind, ports, model, bodies[kind], concurrency, args)
                    runs.setdefault(point, []).append(figures)
                    _progress(point, figures)


def _measure_kind(kind: str, ports: tuple[int, int, int], model: ModelInfo, body: Template,
                  concurrency: int, args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    http_port, grpc_port, pid = ports
    if kind == "grpc":
        return measure("grpc", grpc_port, INFER_METHOD, body, concurrency, args, pid)
    path = f"/v2/models/{model.name}/infer"
    return measure("rest", http_port, path, body, concurrency, args, pid)


def _progress(point: Point, figures: dict[str, Any]) -> None:
    cores = figures["client_cpu_cores"]
    print(f"[grpc-bench] {point}: {figures['rps']:.0f} req/s, client {cores:.2f} cores", flush=True)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def table(runs: dict[Point, list[dict[str, Any]]]) -> tuple[str, dict[Point, float]]:
    lines = [
        "| target | model | rows | calls | req/s (median) | min-max | p50 ms | p99 ms "
        "| server CPU per request (us) | client CPU (cores) | busiest client process | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    medians: dict[Point, float] = {}
    for point in sorted(runs, key=lambda p: (p.model, p.rows, p.concurrency, p.target)):
        figures = runs[point]
        rps = [f["rps"] for f in figures]
        medians[point] = statistics.median(rps)
        lines.append(
            f"| {point.target} | {point.model} | {point.rows} | {point.concurrency} "
            f"| {medians[point]:.0f} | {min(rps):.0f}-{max(rps):.0f} "
            f"| {statistics.median(f['p50_us'] for f in figures) / 1000:.2f} "
            f"| {statistics.median(f['p99_us'] for f in figures) / 1000:.2f} "
            f"| {statistics.median(f['server_cpu_us_per_request'] for f in figures):.0f} "
            f"| {statistics.median(f['client_cpu_cores'] for f in figures):.2f} "
            f"| {max(f['client_max_process_cpu'] for f in figures):.0%} "
            f"| {sum(f['errors'] for f in figures)} |"
        )
    return "\n".join(lines), medians


def ratios(medians: dict[Point, float]) -> list[str]:
    lines = []
    for point, ours in sorted(medians.items(), key=lambda item: str(item[0])):
        if point.target != "ours-grpc":
            continue
        for other, want in (("mlserver-grpc", 2.0), ("ours-rest-v2", 1.0)):
            theirs = medians.get(Point(other, point.model, point.rows, point.concurrency))
            if theirs:
                ratio = ours / theirs
                target = "target" if (point.model, point.concurrency) == ("iris", 64) or (
                    other == "ours-rest-v2") else "reference"  # fmt: skip
                verdict = ("PASS" if ratio >= want else "FAIL") if target == "target" else ""
                lines.append(
                    f"{point.model} {point.rows} row(s) c{point.concurrency} ours-grpc/{other} "
                    f"req/s = {ratio:.2f} ({target} >= {want:g}) {verdict}".rstrip()
                )
    return lines


def cpu_ratios(runs: dict[Point, list[dict[str, Any]]]) -> list[str]:
    """Server CPU per request, theirs over ours: less sensitive to other work on the machine."""
    cost = {
        point: statistics.median(f["server_cpu_us_per_request"] for f in figures)
        for point, figures in runs.items()
    }
    lines = []
    for point in sorted(cost, key=str):
        for other in ("mlserver-grpc", "ours-rest-v2"):
            theirs = cost.get(Point(other, point.model, point.rows, point.concurrency))
            if point.target == "ours-grpc" and theirs and cost[point]:
                lines.append(
                    f"{point.model} {point.rows} row(s) c{point.concurrency} server CPU per "
                    f"request {other}/ours-grpc = {theirs / cost[point]:.2f} (reference)"
                )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    serving_cmd = resolve_serving_cmd(None) or "serving"
    model_dir = prepare_registry(BENCH_DIR / "models-serving-train", "serving-train", serving_cmd)
    models = [load_model_info(model_dir, name) for name in args.models.split(",")]
    opts = LaunchOptions(
        model_dir=model_dir,
        models=models,
        log_dir=BENCH_DIR / "logs",
        serving_cmd=serving_cmd,
        ours_env={"SERVING_GRPC_PORT": str(free_port())},
    )
    runs: dict[Point, list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for name in args.servers.split(","):
            measure_server(name, opts, args, runs)
    rendered, medians = table(runs)
    print("\nEvery request is a cache miss; medians of the runs of each point.\n")
    print(rendered + "\n")
    for line in [*ratios(medians), *cpu_ratios(runs)]:
        print("  " + line)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = BENCH_DIR / f"grpc-results-{stamp}.json"
    document = {
        "args": vars(args),
        "runs": [{"point": vars(point), "runs": figures} for point, figures in runs.items()],
        "table_markdown": rendered,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
