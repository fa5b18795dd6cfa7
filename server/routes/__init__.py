"""HTTP routers: pages (the tuner page), runs (stored runs, reports, heuristics downloads), native (kernels run here).

The dependencies every router may use with `Depends` live here (app.py re-exports them): the app's Settings and
Store, both set on `app.state` by `create_app`.
"""
from __future__ import annotations

from fastapi import Request

from ..settings import Settings
from ..store import Store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store
