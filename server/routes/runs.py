"""Stored runs: post, list, read, quality report, and the generated wgpu_heuristics.rs."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from spiraltorch.shaders import space as load_space

from ..models import Run, RunCreated
from ..report import report
from ..rustgen import generate
from ..store import Conflict

router = APIRouter()
Flavour = Literal["standalone", "st-core"]


def _store(request: Request):
    return request.app.state.store


@router.get("/api/space")
def get_space():
    """The search space (shaders/space.json): parameters, restrictions, presets."""
    return load_space()


@router.post("/api/runs", status_code=201, response_model=RunCreated)
async def post_run(request: Request, run: Run):
    """Store a run. Idempotent on run_id: the same body again answers 200; another body under the same id, 409."""
    limit = request.app.state.settings.max_measurements
    if len(run.measurements) > limit:
        raise HTTPException(413, f"a run may hold at most {limit} measurements; this one has {len(run.measurements)}")
    doc = run.model_dump(mode="json", exclude_unset=True)  # what was posted, as posted
    try:
        created, _ = await run_in_threadpool(_store(request).put_run, doc)
    except Conflict:
        raise HTTPException(409, f"run {run.run_id} is already stored with a different body; "
                                 "post it under a new run_id") from None
    body = RunCreated(run_id=run.run_id, url=f"/api/runs/{run.run_id}",
                      heuristics_url=f"/api/runs/{run.run_id}/heuristics.rs", created=created)
    return JSONResponse(body.model_dump(), status_code=201 if created else 200)


@router.get("/api/runs")
async def list_runs(request: Request, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
    return await run_in_threadpool(_store(request).list_runs, limit, offset)


async def _get(request: Request, run_id: str) -> dict:
    rec = await run_in_threadpool(_store(request).get_run, run_id)
    if rec is None:
        raise HTTPException(404, f"no run with id {run_id!r}; GET /api/runs lists the stored runs")
    return rec


@router.get("/api/runs/{run_id}")
async def get_run(request: Request, run_id: str):
    return await _get(request, run_id)


@router.get("/api/runs/{run_id}/report")
async def get_report(request: Request, run_id: str):
    """Quality of the generated picks on this run's measurements (regret, held-out regret, st-core baseline)."""
    rec = await _get(request, run_id)
    return report(rec["run"])


def _rust(text: str) -> Response:
    return Response(text, media_type="text/x-rust; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="wgpu_heuristics.rs"'})


@router.get("/api/runs/{run_id}/heuristics.rs")
async def run_heuristics(request: Request, run_id: str, flavour: Flavour = "standalone"):
    rec = await _get(request, run_id)
    return _rust(generate(rec["run"], flavour, run_id=run_id, created_at=rec["created_at"]))


@router.get("/api/heuristics.rs")
async def heuristics(request: Request, run: str | None = Query(None, description="'latest' or a run id; none: the stub"),
                     flavour: Flavour = "standalone"):
    if run is None:
        return _rust(generate(None, flavour))
    if run == "latest":
        run = await run_in_threadpool(_store(request).latest_run_id)
        if run is None:
            raise HTTPException(404, "no run stored yet; the stub is at /api/heuristics.rs without ?run=")
    rec = await _get(request, run)
    return _rust(generate(rec["run"], flavour, run_id=run, created_at=rec["created_at"]))
