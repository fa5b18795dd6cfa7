"""The API's contract: pydantic models of a run document (POST /api/runs) and its measurements."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Text = Annotated[str, Field(max_length=4096)]
Ms = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Dim = Annotated[int, Field(ge=1, le=1 << 31)]
MAX_NUMEL = 1 << 53            # where_nd output elements: exact in a JS number and in the generated file's u64
MAX_DEPTH = 32                 # nesting of the free-form `space` object


def check_json_value(v: Any, where: str = "space", depth: int = 0) -> None:
    """Free-form JSON (the run's `space`) must be storable and readable back: finite numbers only (NaN and Infinity
    are not JSON and would break every reader), nesting at most MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{where}: numbers must be finite, got {v}")
    if isinstance(v, dict):
        for k, x in v.items():
            check_json_value(x, f"{where}.{k}", depth + 1)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            check_json_value(x, f"{where}[{i}]", depth + 1)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Adapter(Strict):
    vendor: Text = ""
    architecture: Text = ""
    device: Text = ""
    description: Text = ""
    backend: Text = ""


class TopKParams(Strict):
    use_2ce: bool
    wg: Annotated[int, Field(ge=1, le=4096)]
    kl: Annotated[int, Field(ge=1, le=1024)]
    ch: Annotated[int, Field(ge=0, le=1 << 31)]
    sg: bool = False
    ls: bool = True       # sort candidate lists in workgroup memory when they fit (runs before it existed: true)
    radix: bool = False   # the radix pipeline (runs before it existed: false, and rb = rch = 0)
    rb: Annotated[int, Field(ge=0, le=32)] = 0
    rch: Annotated[int, Field(ge=0, le=1 << 31)] = 0


class WhereParams(Strict):
    path: Literal["direct", "segmented"]
    wg: Annotated[int, Field(ge=1, le=4096)]
    vpt: Annotated[int, Field(ge=1, le=1024)]


class Timed(Strict):
    ok: bool
    error: Text | None = None
    timer: Literal["timestamp", "wall", "cuda-event"] | None = None
    median_ms: Ms | None = None
    min_ms: Ms | None = None
    spread: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    samples_ms: Annotated[list[Ms], Field(max_length=10_000)] = []
    chains: Annotated[int, Field(ge=1, le=1 << 20)] | None = None     # dispatch chains per timestamp pair
    clock: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] | None = None  # canary time / its best
    quantum_ns: Annotated[int, Field(ge=0, le=10**9)] | None = None   # timer's rounding seen (browser; 0: none)
    kernel_ms: Ms | None = None
    checksum: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None

    @model_validator(mode="after")
    def _ok_has_time(self):
        if self.ok and self.median_ms is None:
            raise ValueError("a measurement with ok=true needs median_ms")
        return self


class TopKMeasurement(Timed):
    kernel: Literal["topk"]
    rows: Dim
    cols: Dim
    k: Dim
    params: TopKParams

    @model_validator(mode="after")
    def _k_le_cols(self):
        if self.k > self.cols:
            raise ValueError(f"k must be <= cols (k={self.k}, cols={self.cols})")
        return self


class WhereMeasurement(Timed):
    kernel: Literal["where_nd"]
    case: Literal["contiguous", "neg_stride", "broadcast"]
    shape: Annotated[list[Dim], Field(min_length=1, max_length=6)]
    dtype: Literal["float32", "int32"] = "float32"
    params: WhereParams

    @model_validator(mode="after")
    def _numel_bounded(self):
        if math.prod(self.shape) > MAX_NUMEL:
            raise ValueError(f"shape {self.shape} has more than 2**53 elements")
        return self


Measurement = Annotated[Union[TopKMeasurement, WhereMeasurement], Field(discriminator="kernel")]


class Run(Strict):
    run_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    label: Text = ""
    source: Literal["browser", "native"] = "browser"
    adapter: Adapter = Adapter()
    features: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=256)] = []
    subgroup_sizes: Annotated[list[Annotated[int, Field(ge=0, le=1 << 16)]], Field(max_length=2)] = []
    limits: Annotated[dict[Annotated[str, Field(max_length=128)], Annotated[float, Field(allow_inf_nan=False)]],
                      Field(max_length=256)] = {}
    user_agent: Text = ""
    preset: Annotated[str, Field(max_length=64)] = "custom"
    space: dict = {}
    timer: Literal["timestamp", "wall", "cuda-event", "mixed"] = "wall"
    started_at: Annotated[str, Field(max_length=64)] = ""
    finished_at: Annotated[str, Field(max_length=64)] = ""
    duration_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    status: Literal["complete", "cancelled", "failed"] = "complete"
    measurements: list[Measurement]     # length checked against settings.max_measurements: run_document

    @field_validator("space")
    @classmethod
    def _space_is_plain_json(cls, v):
        check_json_value(v)
        return v


class TooManyMeasurements(ValueError):
    """A run over the server's max_measurements."""


def run_document(run: Run, limit: int) -> dict:
    """What the store keeps of a validated run (POST /api/runs, `spiraltorch-tuner import`): the document as posted
    (fields left out stay out); TooManyMeasurements when it holds more than `limit` measurements."""
    if len(run.measurements) > limit:
        raise TooManyMeasurements(f"a run may hold at most {limit} measurements; this one has {len(run.measurements)}")
    return run.model_dump(mode="json", exclude_unset=True)


class RunCreated(BaseModel):
    run_id: str
    url: str
    heuristics_url: str
    created: bool
