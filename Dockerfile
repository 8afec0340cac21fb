# syntax=docker/dockerfile:1
#
# Model-serving API image: FastAPI on uvicorn workers under gunicorn (`serving serve`).
#
#   docker build -t serving:0.1.0 .
#   docker run --rm -p 8000:8000 -v "$PWD/models:/models:ro" \
#     --read-only --tmpfs /tmp --tmpfs /run/prometheus-multiproc \
#     serving:0.1.0
#
# Only pyproject.toml, README.md, serving/ and training/ are sent as build context
# (see .dockerignore).

############################ builder ############################
# Builds the project wheel and installs it with all its dependencies into a venv at
# /opt/venv. Every dependency ships manylinux wheels for CPython 3.11, so no compiler is
# installed here either; if one ever needs building from source, add build-essential to
# this stage only.
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY . .

# Installing the built wheel (not `pip install -e`) puts the code into site-packages,
# byte-compiled, so the read-only runtime never needs to write __pycache__.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && /opt/venv/bin/pip install /tmp/wheels/*.whl \
    && /opt/venv/bin/serving --help > /dev/null

############################ runtime ############################
FROM python:3.11-slim AS runtime

# Fixed, non-root identity; the Kubernetes manifests use the same numbers.
# --no-log-init: a high UID otherwise makes useradd write a huge sparse lastlog/faillog.
RUN groupadd --system --gid 10001 serving \
    && useradd --system --no-log-init --uid 10001 --gid serving \
        --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin serving

COPY --from=builder /opt/venv /opt/venv

# PROMETHEUS_MULTIPROC_DIR: per-worker metric files shared by the gunicorn workers. It is
# its own directory (mount a tmpfs / memory emptyDir there), not nested under /tmp, so
# mounting a tmpfs on /tmp does not hide it.
# One BLAS/OpenMP thread per process: every gunicorn worker is a process of its own, so
# letting each one start a thread per core oversubscribes the CPUs.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVING_MODEL_DIR=/models \
    SERVING_HOST=0.0.0.0 \
    SERVING_PORT=8000 \
    SERVING_GRPC_PORT=8081 \
    PROMETHEUS_MULTIPROC_DIR=/run/prometheus-multiproc \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1

RUN mkdir -p /models /run/prometheus-multiproc \
    && chown serving:serving /models /run/prometheus-multiproc

# The model registry lives outside the image (a volume, a PVC in Kubernetes).
VOLUME ["/models"]

WORKDIR /app
USER 10001:10001
# HTTP, and the gRPC Open Inference Protocol
EXPOSE 8000 8081

# No curl in the slim image: the standard library does the probe. Liveness only: the
# container is healthy while the process answers, whether or not models are loaded yet.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('SERVING_PORT', '8000'), timeout=4)"]

# Exec form: gunicorn's master is PID 1 and receives SIGTERM directly for a graceful stop.
# `docker run IMAGE train ...` runs other subcommands of the same console script.
ENTRYPOINT ["serving"]
CMD ["serve"]
