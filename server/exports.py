"""Every download of the tuned rule, by flavour: Rust (rustgen.py: "standalone", "st-core", "st-core-v1.3"),
SpiralTorch's tuner_results.json ("wasm-table", wasm_table.py: fitted without the radix pipeline, which st-core
lacks) and our rules file ("rules": the fitted votes and trees per device class, which SPIRALTORCH_TUNER_HEURISTICS
and the package's shipped rules use)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from spiraltorch_tuner.heuristics import adapter_class
from spiraltorch_tuner.rules import fit_runs

from .rustgen import FLAVOURS as RUST_FLAVOURS
from .rustgen import file_name, generate, generate_merged
from .wasm_table import wasm_table

FLAVOURS = RUST_FLAVOURS + ("wasm-table", "rules")


@dataclass(frozen=True)
class Export:
    text: str
    media_type: str
    filename: str


class UnknownFlavour(ValueError):
    pass


def _check(flavour: str):
    if flavour not in FLAVOURS:
        raise UnknownFlavour(f"unknown flavour {flavour!r}; allowed: {', '.join(FLAVOURS)}")


def _rust(text: str, flavour: str) -> Export:
    return Export(text, "text/x-rust; charset=utf-8", file_name(flavour))


def _json(rules, primary, flavour: str) -> Export:
    if flavour == "rules":
        return Export(json.dumps(rules.to_document(), separators=(",", ":")) + "\n", "application/json",
                      "spiraltorch_tuner_rules.json")
    cls = next((c for c in rules.classes if c.key == primary), None)
    records = wasm_table(cls.votes) if cls else []
    return Export("[\n" + ",\n".join(json.dumps(r) for r in records) + ("\n" if records else "") + "]\n",
                  "application/json", "tuner_results.json")


def export_run(doc: dict | None, flavour: str = "standalone", run_id: str | None = None,
               created_at: str | None = None) -> Export:
    """One run's rule in a flavour (None: the stub / an empty table / no classes)."""
    _check(flavour)
    if flavour in RUST_FLAVOURS:
        return _rust(generate(doc, flavour, run_id=run_id, created_at=created_at), flavour)
    docs = [] if doc is None else [{**doc, "run_id": run_id or doc.get("run_id", "")}]
    rules = fit_runs(docs, "rules", merge=False, radix=flavour != "wasm-table")
    return _json(rules, adapter_class(doc) if doc else None, flavour)


def export_merged(records, flavour: str = "standalone") -> Export:
    """Every stored run's rule, merged per device class (records oldest first); the single-class flavours
    (wasm-table) take the newest run's class, as the Rust file's plain choosers do."""
    _check(flavour)
    records = list(records)
    if flavour in RUST_FLAVOURS:
        return _rust(generate_merged(records, flavour), flavour)
    docs = [{**r["run"], "run_id": r["run_id"]} for r in records]
    return _json(fit_runs(docs, "rules", radix=flavour != "wasm-table"),
                 adapter_class(records[-1]["run"]) if records else None, flavour)

