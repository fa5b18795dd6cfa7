"""The tuner page."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates

from .. import __version__

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


@router.get("/", include_in_schema=False)
def index(request: Request):
    return templates.TemplateResponse(request, "index.html",
                                      {"request": request, "title": "SpiralTorch Tuner", "version": __version__})
