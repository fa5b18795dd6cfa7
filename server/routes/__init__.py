"""HTTP routers: pages (the tuner page), runs (stored runs, reports, heuristics downloads), native (kernels run here).

The dependencies every router may use with `Depends` live here (app.py re-exports them): the app's Settings and
Store, both set on `app.state` by `create_app`.
"""
from __future__ import annotations

from fastapi import Request

from ..settings import Settings
from ..store import Store


def validation_message(errors) -> str:
    """pydantic validation errors as one readable line: `field.path: what is wrong; ...` (at most 20 of them)."""
    parts = []
    for e in errors[:20]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
    return "; ".join(parts) + more


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store
