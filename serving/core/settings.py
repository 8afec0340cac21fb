"""Server settings, read once from SERVING_* environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Comma-separated in the environment ("a,b"), a list in code.
CommaList = Annotated[list[str], NoDecode]
RuntimeMode = Literal["auto", "sklearn", "onnx"]  # SERVING_RUNTIME


class Settings(BaseSettings):
    """Every field has a working default, so the server starts with nothing set."""

    model_config = SettingsConfigDict(env_prefix="SERVING_", frozen=True, extra="ignore")

    model_dir: Path = Path("./models")
    redis_url: str | None = None  # unset: in-process cache, coordination through the disk
    cache_ttl_seconds: int = Field(default=300, ge=1)
    cache_max_entries: int = Field(default=10_000, ge=0)  # in-process LRU; 0 turns caching off
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    admin_tokens: CommaList = Field(default=[], repr=False)
    api_keys: CommaList = Field(default=[], repr=False)
    max_rows: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)  # POST /models/{name}/versions
    cors_origins: CommaList = []
    trusted_keys: CommaList = []  # Ed25519 public keys (base64 raw or PEM) artifacts must carry
    trusted_keys_file: Path | None = None  # one key per line, added to trusted_keys
    # Trainer's key; when no trusted key is configured the server trusts its public half,
    # so a fresh machine works with no set-up (`serving train` creates the pair).
    signing_key_file: Path = Path("~/.config/serving/signing-key.pem")
    poll_interval_seconds: float = Field(default=1.0, gt=0)  # registry re-read for alias moves
    # Versions loaded on demand per worker: named by a request, not what the model serves by
    # default (SERVING_MAX_EXTRA_VERSIONS).
    max_extra_versions: int = Field(default=4, ge=0)
    # A version loaded because a request named it, and that no alias points at, is unloaded
    # after this long without a request.
    unload_idle_seconds: float = Field(default=300.0, gt=0)
    predict_threads: int = Field(default=4, ge=1)  # concurrent scoring threads per worker
    batching: bool = True  # merge concurrent requests per model version (see batching.py)
    max_batch_size: int = Field(default=256, ge=1)  # rows per merged call; manifest may override
    max_delay_ms: float = Field(default=0.0, ge=0)  # wait for more rows when busy; never when idle
    # Prediction requests one worker holds at once (reading, queued or scoring); more are
    # refused at once with 503 `overloaded`. Also bounds each batching queue.
    max_inflight: int = Field(default=256, ge=1)
    request_timeout_seconds: float = Field(default=30.0, gt=0)  # a prediction's deadline: 504
    # Tracked allocations between young-generation collections in each worker (Python's
    # default: 700). A 10,000-row body decodes into 10,000 lists; at 700 those trigger
    # dozens of collections per request, about 15% of decoding it (docs/performance-notes.md).
    # Which form of a version serves it: the compiled form where there is one (auto), the
    # pickled estimator always (sklearn), or only compiled forms, never unpickling (onnx).
    runtime: RuntimeMode = "auto"
    gc_threshold: int = Field(default=50_000, ge=1)
    shadow_sample: float = Field(default=1.0, ge=0, le=1)  # share of routed requests shadowed
    log_level: str = "info"
    # Recent inputs each version's drift is computed over: rows ("10000") or a time ("15m",
    # "900s", "1h"); "0" turns drift counting off.
    drift_window: str = Field(default="10000", pattern=r"^\s*(\d+|\d+(\.\d+)?[smh])\s*$")
    # Where sampled requests and answers go: redis://host:port/db#stream or file:/path.jsonl.
    payload_log: str | None = None
    payload_sample: float = Field(default=1.0, ge=0.0, le=1.0)  # share of requests logged

    # `serving serve` (gunicorn)
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=2, ge=1)
    graceful_timeout_seconds: int = Field(default=30, ge=1)
    # gRPC Open Inference Protocol, served by every worker on this one port (0: off)
    grpc_port: int = Field(default=8081, ge=0, le=65535)

    @field_validator("signing_key_file", "trusted_keys_file")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("admin_tokens", "api_keys", "cors_origins", "trusted_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
