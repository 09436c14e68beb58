"""Settings, read once from HOOKLINE_* environment variables and passed explicitly from there on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path(".hookline")
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
DEFAULT_GRPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    # Empty means SQLite in data_dir; otherwise an SQLAlchemy URL (postgresql+psycopg://...).
    database_url: str = ""
    grpc_address: str = "127.0.0.1:50051"
    grpc_max_message_bytes: int = DEFAULT_GRPC_MAX_MESSAGE_BYTES
    # "kid:base64key,..." (first encrypts). Empty: a key file in data_dir, created on first use.
    master_keys: str = ""
    catalog_path: Path | None = None
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    # Operator allow-list for SSRF checks; for local development only, empty by default.
    ssrf_allow_cidrs: tuple[str, ...] = ()
    ssrf_allow_http: bool = False
    signature_header: str = "X-Hookline-Signature"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "hookline-deliveries"
    # Run workflow code in Temporal's sandbox, which refuses non-deterministic calls. Off by
    # default: it cost about 15 % of the worker's CPU per delivery (bench/README.md). The test
    # suite runs the workflow sandboxed and replays recorded histories, which is where
    # non-determinism is caught.
    workflow_sandbox: bool = False

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        catalog = os.environ.get("HOOKLINE_CATALOG_PATH")
        values: dict[str, object] = {
            "data_dir": Path(os.environ.get("HOOKLINE_DATA_DIR", str(DEFAULT_DATA_DIR))),
            "database_url": os.environ.get("HOOKLINE_DATABASE_URL", ""),
            "grpc_address": os.environ.get("HOOKLINE_GRPC_ADDRESS", "127.0.0.1:50051"),
            "master_keys": os.environ.get("HOOKLINE_MASTER_KEYS", ""),
            "catalog_path": Path(catalog) if catalog else None,
            "max_event_bytes": int(
                os.environ.get("HOOKLINE_MAX_EVENT_BYTES", str(DEFAULT_MAX_EVENT_BYTES))
            ),
            "ssrf_allow_cidrs": _env_list("HOOKLINE_SSRF_ALLOW_CIDRS"),
            "ssrf_allow_http": _env_bool("HOOKLINE_SSRF_ALLOW_HTTP"),
            "signature_header": os.environ.get("HOOKLINE_SIGNATURE_HEADER", "X-Hookline-Signature"),
            "temporal_address": os.environ.get("HOOKLINE_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
            "temporal_namespace": os.environ.get("HOOKLINE_TEMPORAL_NAMESPACE", "default"),
            "task_queue": os.environ.get("HOOKLINE_TASK_QUEUE", "hookline-deliveries"),
            "workflow_sandbox": _env_bool("HOOKLINE_WORKFLOW_SANDBOX"),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hookline.db').resolve()}"
