"""Where a kernel's parameters come from when the caller gives none: the tuned rule for the device's class.

Sources, in order (`choose`):
1. the heuristics source the user points to: `set_heuristics(...)` or the environment variable
   SPIRALTORCH_TUNER_HEURISTICS, a path to a run document (POST /api/runs's body, GET /api/runs/{id}'s wrapper or a
   JSON list of them), a rules file (`spiraltorch-tuner heuristics --flavour rules`) or SpiralTorch's
   `tuner_results.json` (`--flavour wasm-table`); the server adds its own database (`choose(..., extra=...)`);
2. the rules shipped in this package (shipped_rules.json, fitted on the committed runs of bench/results);
3. the fixed default of shaders/space.json (the CUDA backend: its built-in table).

A rule set of runs serves an adapter from the classes of its vendor and architecture (heuristics.class_order); a
tuner_results.json carries no device class and serves every WGSL adapter. A pick that is not legal on the adapter
(a workgroup over its limits, subgroups it lacks) is passed over for the next source, and the Choice says why.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import heuristics as h
from .errors import SpiralTorchError
from .space import stcore_fallback, violations

ENV = "SPIRALTORCH_TUNER_HEURISTICS"
SHIPPED = Path(__file__).with_name("shipped_rules.json")
RULES_FORMAT = "spiraltorch-tuner-rules"
# The fields of SpiralTorch's WasmTunerRecord (crates/st-core/src/backend/wasm_tuner.rs) and their serde aliases.
WASM_BOUNDS = ("rows_min", "rows_max", "cols_min", "cols_max", "k_min", "k_max", "subgroup")
WASM_OURS = ("use_2ce", "wg", "kl", "ch")
WASM_OTHERS = ("algo_topk", "ctile", "mode_midk", "mode_bottomk", "tile_cols", "radix", "segments")
WASM_ALIASES = {"rows": "rows_min", "sg": "subgroup", "mk": "algo_topk", "tile": "ctile"}


class HeuristicsError(SpiralTorchError, ValueError):
    """A heuristics source that is missing, unreadable or of another format; the message names it and the problem."""


@dataclass(frozen=True)
class Choice:
    """The configuration a call ran with and where it came from: source "explicit" (the caller's params),
    "tuned:NAME" (the user's source: a file name, or "database" in the server), "shipped" (the package's rules) or
    "default" (the fixed default); `rule` names the device class or table that answered, `note` why an earlier
    source did not."""
    kernel: str
    params: dict
    source: str
    rule: str | None = None
    note: str | None = None

    def as_dict(self) -> dict:
        return {"kernel": self.kernel, "params": dict(self.params), "source": self.source, "rule": self.rule,
                "note": self.note}


@dataclass
class ClassRules:
    """One device class's fitted rules: the TopK votes by subgroups flag and the where_nd tree (None: no data)."""
    key: h.AdapterClass
    votes: dict
    tree: tuple | None
    runs: list = field(default_factory=list)


class RuleSet:
    """Rules fitted per device class, from runs or a rules file; `name` is the source's label."""

    def __init__(self, name: str, classes: list[ClassRules]):
        self.name, self.classes = name, classes

    def _serving(self, adapter: h.AdapterClass, family: str):
        keys = [c.key for c in self.classes]
        for i in h.class_order(keys, adapter):
            if backend_family(keys[i].backend) == family:
                yield self.classes[i]

    def topk(self, adapter, family, rows, cols, k, subgroups):
        for c in self._serving(adapter, family):
            v = c.votes.get(bool(subgroups))
            if v is not None:
                return h.vote_pick(v, rows, cols, k), h.class_key(c.key)
        return None

    def where(self, adapter, family, numel, ndim, contiguous):
        for c in self._serving(adapter, family):
            if c.tree is not None:
                return h.descend(c.tree, h.where_features(numel, ndim, contiguous)), h.class_key(c.key)
        return None

    def to_document(self) -> dict:
        """The rules file (RULES_FORMAT): each class's key, runs, votes and tree, as JSON."""
        def vote(v):
            return None if v is None else {"points": v.points, "configs": v.configs, "cost": v.cost, "grid": v.grid,
                                           "rgrid": v.rgrid}
        return {"format": RULES_FORMAT, "version": 1, "doc": "fitted TopK votes and where_nd trees per device class "
                "(native/heuristics.py); SPIRALTORCH_TUNER_HEURISTICS may point to such a file",
                "classes": [{"class": vars(c.key), "runs": c.runs,
                             "topk": {"subgroups": vote(c.votes.get(True)), "no_subgroups": vote(c.votes.get(False))},
                             "where_nd": c.tree} for c in self.classes]}


def backend_family(backend: str) -> str:
    """Which kernels a class's measurements are of: "cuda" (our CUDA kernels), "cpu", "mps", else "wgsl" (wgpu-py,
    a browser)."""
    name = backend.split(":")[0].lower()
    return name if name in ("cuda", "cpu", "mps") else "wgsl"


def fit_runs(docs, name: str, merge: bool = True, radix: bool = True) -> RuleSet:
    """The rules of run documents, fitted per device class as wgpu_heuristics.rs is: `merge`, each class's runs
    merged (heuristics.merge_measurements, as a file of every run); else one run's measurements as they are (as a
    file of that run). `radix` False: without the radix pipeline's measurements (heuristics.without_radix: for
    SpiralTorch's tuner_results.json, whose kernels have no radix pipeline)."""
    keep = h.usable if radix else (lambda ms: h.usable(h.without_radix(ms)))
    docs = [{**d, "measurements": keep(d.get("measurements", []))} for d in docs]
    if not merge and len(docs) > 1:
        raise ValueError("merge=False fits one run")
    classes = []
    for key, runs in h.group_by_class(docs).items():
        ms = h.merge_measurements(runs) if merge else runs[0]["measurements"]
        topk = h.topk_table(ms)
        classes.append(ClassRules(key, dict(topk.votes), h.where_table(ms).tree,
                                  [str(d.get("run_id", "")) for d in runs]))
    return RuleSet(name, classes)


def _tuple(x):
    return tuple(_tuple(v) for v in x) if isinstance(x, list) else x


def rules_from_document(d: dict, name: str) -> RuleSet:
    # a file written before the radix pipeline existed: six-field configurations (topk_config pads them), no rgrid
    def vote(v):
        return None if v is None else h.Vote(_tuple(v["points"]), tuple(h.topk_config(c) for c in v["configs"]),
                                              _tuple(v["cost"]), _tuple(v["grid"]), _tuple(v.get("rgrid", [])))
    try:
        return RuleSet(name, [ClassRules(h.AdapterClass(**c["class"]),
                                         {True: vote(c["topk"]["subgroups"]), False: vote(c["topk"]["no_subgroups"])},
                                         _tuple(c["where_nd"]), list(c.get("runs", []))) for c in d["classes"]])
    except (KeyError, TypeError, ValueError) as e:
        raise HeuristicsError(f"{name}: a damaged rules file ({type(e).__name__}: {e})") from None


class WasmTable:
    """SpiralTorch's WasmTunerTable (tuner_results.json): records sorted as st-core sorts them (subgroup true first,
    then rows_min, cols_min ascending, cols_max descending; stable), the first match's overrides applied to st-core's
    fallback rule. Our parameters it has no field for: sg = the adapter has subgroups, ls = true, no radix pipeline
    (st-core has none)."""

    def __init__(self, name: str, records: list[dict]):
        self.name = name
        self.records = sorted(records, key=_wasm_sort_key)

    def topk(self, adapter, family, rows, cols, k, subgroups):
        if family != "wgsl":
            return None
        for i, r in enumerate(self.records):
            if wasm_matches(r, rows, cols, k, subgroups):
                base = stcore_fallback(rows, cols, k, subgroups)
                c = (r.get("use_2ce", base["use_2ce"]), r.get("wg", base["wg"]), r.get("kl", base["kl"]),
                     r.get("ch", base["ch"]), bool(subgroups), True, False, 0, 0)
                return h.legalize(c, cols, k, None), f"record {i}"
        return None

    def where(self, *args):
        return None


def _wasm_sort_key(r: dict):
    # st-core's compare_records, for records whose subgroup is set (ours always is): a total order
    return (0 if r.get("subgroup") is True else 1 if r.get("subgroup") is None else 2, r.get("rows_min") or 0,
            r.get("cols_min", 0), -r.get("cols_max", 2**64 - 1))


def wasm_matches(r: dict, rows: int, cols: int, k: int, subgroup: bool) -> bool:
    """WasmTunerRecord::matches: bounds inclusive, absent ones open, subgroup compared when set."""
    return ((r.get("rows_min") is None or rows >= r["rows_min"]) and (r.get("rows_max") is None or rows <= r["rows_max"])
            and r.get("cols_min", 0) <= cols <= r.get("cols_max", 2**64 - 1)
            and r.get("k_min", 0) <= k <= r.get("k_max", 2**64 - 1)
            and (r.get("subgroup") is None or r["subgroup"] == bool(subgroup)))


def wasm_records(data: list, name: str) -> list[dict]:
    """tuner_results.json's records with serde's aliases resolved, checked for the types st-core would parse."""
    out = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise HeuristicsError(f"{name}: record {i} is not an object")
        r = {}
        for key, v in rec.items():
            key = WASM_ALIASES.get(key, key)
            if key not in WASM_BOUNDS + WASM_OURS + WASM_OTHERS:
                raise HeuristicsError(f"{name}: record {i} has an unknown field {key!r}; WasmTunerRecord's fields: "
                                      f"{', '.join(WASM_BOUNDS + WASM_OURS + WASM_OTHERS)}")
            want_bool = key in ("subgroup", "use_2ce")
            if v is not None and (isinstance(v, bool) != want_bool or not isinstance(v, (bool, int))
                                  or (not want_bool and v < 0)):
                raise HeuristicsError(f"{name}: record {i} field {key!r} must be "
                                      f"{'true/false' if want_bool else 'a non-negative integer'}, got {v!r}")
            if v is not None:
                r[key] = v
        out.append(r)
    return out


def from_data(data, name: str):
    """A rule source from parsed JSON (the formats of the module docstring)."""
    if isinstance(data, dict) and data.get("format") == RULES_FORMAT:
        return rules_from_document(data, name)
    if isinstance(data, dict) and isinstance(data.get("run"), dict):
        data = data["run"]
    if isinstance(data, dict) and isinstance(data.get("measurements"), list):
        return fit_runs([data], name, merge=False)
    if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        docs = [d["run"] if isinstance(d.get("run"), dict) else d for d in data]
        if all(isinstance(d.get("measurements"), list) for d in docs):
            return fit_runs(docs, name)
        return WasmTable(name, wasm_records(data, name))
    if isinstance(data, list):
        return WasmTable(name, wasm_records(data, name))
    kind = type(data).__name__ if not isinstance(data, dict) else f"an object with keys {sorted(data)[:6]}"
    raise HeuristicsError(f"{name}: not a run document, a rules file or a tuner_results.json (it is {kind})")


def load(path) -> RuleSet | WasmTable:
    """A rule source from a file; HeuristicsError naming the path and the problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HeuristicsError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HeuristicsError(f"{p}: cannot be read ({e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise HeuristicsError(f"{p}: not JSON ({e})") from None
    return from_data(data, str(p))


class RuleBook:
    """The user's source (explicit or the environment variable, loaded on first use and again when the file
    changes) and the shipped rules (loaded once)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._explicit = None            # a loaded source from set_heuristics, or None
        self._env = (None, None)         # ((path, mtime), loaded source)
        self._shipped = None

    def set(self, source) -> None:
        with self._lock:
            if source is None:
                self._explicit = None
            elif isinstance(source, (str, os.PathLike)):
                self._explicit = load(source)
            else:
                self._explicit = from_data(source, "set_heuristics")

    def user(self):
        """The user's source, or None; raises HeuristicsError when the environment points to a bad one."""
        with self._lock:
            if self._explicit is not None:
                return self._explicit
            path = os.environ.get(ENV)
            if not path:
                return None
            try:
                stamp = (path, os.stat(path).st_mtime_ns)
            except OSError:
                stamp = (path, None)
            if self._env[0] != stamp:
                self._env = (None, None)          # a bad file is not cached: fixed, it is read again
                self._env = (stamp, load(path))
            return self._env[1]

    def shipped(self) -> RuleSet | None:
        with self._lock:
            if self._shipped is None:
                self._shipped = load(SHIPPED) if SHIPPED.exists() else RuleSet("shipped", [])
            return self._shipped


BOOK = RuleBook()


def _source_label(src) -> str:
    return Path(src.name).name if src.name not in ("database", "set_heuristics") else src.name


def adapter_of(backend_name: str, info: dict) -> h.AdapterClass:
    """The device class of a backend from its `info()`, keyed as the runs it tunes are (tuner.tune's adapter)."""
    return h.adapter_class({"adapter": {"vendor": info.get("vendor", ""), "architecture": info.get("architecture", ""),
                                        "device": info.get("device", ""),
                                        "backend": f"{backend_name}:{info.get('backend', '')}".rstrip(":")},
                            "subgroup_sizes": info.get("subgroup_sizes", [])})


def choose(kernel: str, backend, info: dict, query: tuple, limits: dict, features, default: dict,
           extra=None) -> Choice:
    """The configuration for `query` ((rows, cols, k) for "topk", (numel, ndim, contiguous) for "where_nd") on a
    backend whose `info()` is `info`: the first source of the module docstring whose pick is legal here.
    `extra`: a rule source the caller adds after the user's (the server's database)."""
    family = backend_family(getattr(backend, "name", ""))
    adapter = adapter_of(backend.name, info)
    subgroups = "subgroups" in features
    notes = []
    sources = [(s, "tuned:" + _source_label(s)) for s in (BOOK.user(), extra) if s is not None]
    sources.append((BOOK.shipped(), "shipped"))
    for src, label in sources:
        got = (src.topk(adapter, family, *query, subgroups) if kernel == "topk"
               else src.where(adapter, family, *query))
        if got is None:
            continue
        c, rule = got
        params = dict(zip(h.TOPK_KEYS if kernel == "topk" else h.WHERE_KEYS, c))
        shape = ({"rows": query[0], "cols": query[1], "k": query[2]} if kernel == "topk"
                 else {"ndim": query[1], "numel": query[0]})
        bad = violations(kernel, shape, params, limits, features, wgsl=family == "wgsl")
        if bad:
            notes.append(f"{label} ({rule}) picked {params}, not legal here: breaks {', '.join(bad)}")
            continue
        return Choice(kernel, params, label, rule, "; ".join(notes) or None)
    return Choice(kernel, dict(default), "default", None, "; ".join(notes) or None)
