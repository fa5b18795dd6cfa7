"""Stored runs: post, list, read, quality report, and the generated wgpu_heuristics.rs."""
from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from spiraltorch_tuner.shaders import space as load_space

from ..models import Run, RunCreated, TooManyMeasurements, run_document
from ..report import (NothingToJudge, RuleIsJudgedRun, UnknownRun, class_summaries, judge, report, report_classes,
                      rule_fit)
from ..exports import Export, export_merged, export_run
from ..settings import Settings
from ..store import Conflict, Store
from . import get_settings, get_store

router = APIRouter()
Flavour = Literal["standalone", "st-core", "st-core-v1.3", "wasm-table", "rules"]   # exports.FLAVOURS
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@router.get("/api/space")
def get_space():
    """The search space (shaders/space.json): parameters, restrictions, presets."""
    return load_space()


@router.post("/api/runs", status_code=201, response_model=RunCreated)
async def post_run(run: Run, store: StoreDep, settings: SettingsDep):
    """Store a run. Idempotent on run_id: the same body again answers 200; another body under the same id, 409."""
    try:
        doc = run_document(run, settings.max_measurements)  # what was posted, as posted
    except TooManyMeasurements as e:
        raise HTTPException(413, str(e)) from None
    try:
        created, _ = await run_in_threadpool(store.put_run, doc)
    except Conflict:
        raise HTTPException(409, f"run {run.run_id} is already stored with a different body; "
                                 "post it under a new run_id") from None
    body = RunCreated(run_id=run.run_id, url=f"/api/runs/{run.run_id}",
                      heuristics_url=f"/api/runs/{run.run_id}/heuristics.rs", created=created)
    return JSONResponse(body.model_dump(), status_code=201 if created else 200)


@router.get("/api/runs")
def list_runs(store: StoreDep, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
    """Stored runs, newest first (summaries; GET /api/runs/{id} has the whole document)."""
    return store.list_runs(limit, offset)


def _no_run(run_id: str) -> HTTPException:
    return HTTPException(404, f"no run with id {json.dumps(run_id)}; GET /api/runs lists the stored runs")


def _get(store: Store, run_id: str) -> dict:
    rec = store.get_run(run_id)
    if rec is None:
        raise _no_run(run_id)
    return rec


@router.get("/api/runs/{run_id}")
def get_run(run_id: str, store: StoreDep):
    """{"run_id", "created_at", "run": the posted document}."""
    return _get(store, run_id)


@router.get("/api/runs/{run_id}/report")
def get_report(run_id: str, store: StoreDep):
    """Quality of the generated picks on this run's measurements (regret, held-out regret, st-core baseline)."""
    return report(_get(store, run_id)["run"])


@router.get("/api/runs/{run_id}/judge")
def get_judge(run_id: str, store: StoreDep,
              rule: str = Query("all", max_length=200, description="the run to fit the TopK rule on: a run id, or "
                                "'all': every other stored run of this run's device class, merged")):
    """The TopK rule fitted on other runs, judged on this run's shapes (regret per shape; shapes it was not fitted
    on, such as your model's, tuned in their own run)."""
    on = _get(store, run_id)["run"]
    try:
        return judge(on, *rule_fit(store, on, rule))
    except RuleIsJudgedRun as e:
        raise HTTPException(422, f"rule: {e}") from None
    except UnknownRun:
        raise _no_run(rule) from None
    except NothingToJudge as e:
        raise HTTPException(422, str(e)) from None


@router.get("/api/report")
def get_merged_report(store: StoreDep, run: Literal["all"] = "all",
                      device_class: str | None = Query(None, max_length=1000,
                                                       description="one class only, as GET /api/classes names it")):
    """The quality report per device class on every stored run, merged per class (what `?run=all` generates)."""
    records = store.all_runs()
    out = report_classes(records, device_class)
    if device_class is not None and not out["classes"]:
        known = [c["device_class"] for c in class_summaries(records)]
        raise HTTPException(404, f"no stored run of device class {json.dumps(device_class)}; the stored classes "
                                 f"(GET /api/classes): {json.dumps(known)}")
    return out


@router.get("/api/classes")
def get_classes(store: StoreDep):
    """The device classes of the stored runs (vendor, architecture, subgroup sizes, backend): per class its key (for
    /api/report?device_class=), its runs, oldest first, and how many measurements they hold."""
    return class_summaries(store.all_runs())


def _download(e: Export) -> Response:
    return Response(e.text, media_type=e.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{e.filename}"'})


@router.get("/api/runs/{run_id}/heuristics.rs")
def run_heuristics(run_id: str, store: StoreDep, flavour: Flavour = "standalone"):
    """The rule fitted on this run, as a download: wgpu_heuristics.rs (flavour standalone; st-core: SpiralTorch's
    wgpu_heuristics_generated.rs with its 11-field Choice; st-core-v1.3: v1.3's 4-field module), SpiralTorch's
    tuner_results.json (wasm-table) or our rules file (rules, for SPIRALTORCH_TUNER_HEURISTICS)."""
    rec = _get(store, run_id)
    return _download(export_run(rec["run"], flavour, run_id=run_id, created_at=rec["created_at"]))


@router.get("/api/heuristics.rs")
def heuristics(store: StoreDep,
               run: str | None = Query(None, max_length=64, description="'latest', 'all' (every run, merged per "
                                       "device class) or a run id; none: the stub"),
               flavour: Flavour = "standalone"):
    """The rule (flavours as for /api/runs/{id}/heuristics.rs) from the latest run, a given run, every stored run
    (`run=all`: one table per device class, each merged from that class's runs; `choose_topk_for` picks the class;
    wasm-table: the newest run's class), or (no `run`) the stub whose choosers return None."""
    if run is None:
        return _download(export_run(None, flavour))
    if run == "all":
        return _download(export_merged(store.all_runs(), flavour))
    if run == "latest":
        run = store.latest_run_id()
        if run is None:
            raise HTTPException(404, "no run stored yet; the stub is at /api/heuristics.rs without ?run=")
    rec = _get(store, run)
    return _download(export_run(rec["run"], flavour, run_id=run, created_at=rec["created_at"]))
