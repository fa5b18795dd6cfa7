"""Server settings: defaults, overridden by SPIRALTORCH_* environment variables or CLI options."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _env(name, default, cast=str):
    v = os.environ.get(name)
    return default if v in (None, "") else cast(v)


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    db_path: str = "spiraltorch-tuner.sqlite3"
    database_url: str | None = None       # postgresql://user@host/db: a shared PostgreSQL database instead of db_path
    token: str | None = None              # required on write/native endpoints when set; required to bind non-loopback
    max_body_bytes: int = 64 << 20        # request bodies over this get 413
    max_measurements: int = 200_000       # per posted run
    max_elements: int = 1 << 26           # rows*cols (TopK) or output elements (where_nd) of a native request
    native_concurrency: int = 1           # native requests running at once per device; the rest wait
    native_timeout_s: float = 60.0        # wait + run limit of a native request, then 503 with Retry-After
    cors_origins: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        s = cls(
            host=_env("SPIRALTORCH_HOST", cls.host), port=_env("SPIRALTORCH_PORT", cls.port, int),
            db_path=_env("SPIRALTORCH_DB", cls.db_path),
            database_url=_env("SPIRALTORCH_DATABASE_URL", None), token=_env("SPIRALTORCH_TOKEN", None),
            max_body_bytes=_env("SPIRALTORCH_MAX_BODY_BYTES", cls.max_body_bytes, int),
            max_elements=_env("SPIRALTORCH_MAX_ELEMENTS", cls.max_elements, int),
            native_concurrency=_env("SPIRALTORCH_NATIVE_CONCURRENCY", cls.native_concurrency, int),
            native_timeout_s=_env("SPIRALTORCH_NATIVE_TIMEOUT_S", cls.native_timeout_s, float),
            cors_origins=[o for o in _env("SPIRALTORCH_CORS", "").split(",") if o.strip()],
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        return s

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK
