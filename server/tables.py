"""What the two stores share (SQLite, server/store.py; PostgreSQL, server/db.py): the rows of the runs and
measurements tables built from a run document, the schema 2 backfill, the read side (`Reads`) and `Conflict`.
Both stores import from here; neither imports the other except where `open_store` picks one."""
from __future__ import annotations

import datetime as _dt
import json

# Version 2 added the measurements' kernel_ms (where_nd's kernel alone) and clock (the clock canary's ratio): a
# version 1 database gets the columns, filled from each stored run document.
V2_COLUMNS = ("kernel_ms", "clock")


class Conflict(Exception):
    """A run id that is already stored with a different body."""


RETRY_AFTER_S = 2       # what a 503 for an unreachable database tells the client to wait before retrying


class StoreUnavailable(Exception):
    """The database cannot be reached right now (PostgreSQL stopped or restarting, a lost connection, SQLite locked
    or failing I/O): nothing was stored; the same request may be retried. The app answers 503 with Retry-After."""


class StoreFull(Exception):
    """The database's disk is full: nothing was stored, and writes keep failing until space is freed (no restart
    needed). The app answers 507 Insufficient Storage."""


def canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def run_row(doc: dict, sha: str, body: bytes) -> tuple:
    """The runs-table row of a run document (run_id .. doc_json, in table order)."""
    ms = doc.get("measurements", [])
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return (doc["run_id"], now, doc.get("label", ""), doc.get("source"), doc.get("status"), doc.get("preset"),
            json.dumps(doc.get("adapter", {})), json.dumps(doc.get("features", [])), len(ms),
            sum(1 for m in ms if m.get("ok")), doc.get("duration_s"), sha, body.decode())


def measurement_rows(doc: dict) -> list[tuple]:
    """The measurements-table rows of a run document, in posted order (seq = index)."""
    return [(doc["run_id"], i, m["kernel"], m.get("rows"), m.get("cols"), m.get("k"), m.get("case"),
             json.dumps(m.get("shape")) if m.get("shape") is not None else None, m.get("dtype"),
             json.dumps(m.get("params", {}), sort_keys=True), int(bool(m.get("ok"))), m.get("error"),
             m.get("timer"), m.get("median_ms"), m.get("min_ms"), m.get("spread"), m.get("kernel_ms"), m.get("clock"))
            for i, m in enumerate(doc.get("measurements", []))]


def v2_backfill(runs) -> list[tuple]:
    """(kernel_ms, clock, run_id, seq) of the measurements that have either, from (run_id, doc_json) rows: the
    schema 2 columns of runs stored before them."""
    out = []
    for run_id, doc_json in runs:
        for i, m in enumerate(json.loads(doc_json).get("measurements", [])):
            if m.get("kernel_ms") is not None or m.get("clock") is not None:
                out.append((m.get("kernel_ms"), m.get("clock"), run_id, i))
    return out


V2_UPDATE = "update measurements set kernel_ms = ?, clock = ? where run_id = ? and seq = ?"


RUN_COLS = ("run_id, created_at, label, source, status, preset, adapter_json, features_json, n_measurements, n_ok, "
            "duration_s, body_sha256, doc_json")


class Reads:
    """The read side, shared by both backends: SQL with `?` placeholders through `query`; `_ORDER` is the
    newest-first order (SQLite: created_at, rowid; PostgreSQL: created_at, an insertion counter)."""

    _ORDER = "created_at desc, rowid desc"

    def query(self, sql: str, params=()) -> list[tuple]:
        """Rows of a read-only SQL query (`?` placeholders) on this store's tables, e.g. across runs."""
        raise NotImplementedError

    def _one(self, sql: str, params=()):
        rows = self.query(sql, params)
        return rows[0] if rows else None

    _COLS = "run_id, created_at, label, source, status, preset, adapter_json, n_measurements, n_ok, duration_s"

    @staticmethod
    def _summary(row) -> dict:
        (run_id, created_at, label, source, status, preset, adapter, n, n_ok, dur) = row
        return {"run_id": run_id, "created_at": created_at, "label": label, "source": source, "status": status,
                "preset": preset, "adapter": json.loads(adapter), "n_measurements": n, "n_ok": n_ok,
                "duration_s": dur}

    def summary(self, run_id: str) -> dict | None:
        row = self._one(f"select {self._COLS} from runs where run_id = ?", (run_id,))
        return self._summary(row) if row else None

    def list_runs(self, limit: int = 100, offset: int = 0) -> list[dict]:
        rows = self.query(f"select {self._COLS} from runs order by {self._ORDER} limit ? offset ?", (limit, offset))
        return [self._summary(r) for r in rows]

    def get_run(self, run_id: str) -> dict | None:
        row = self._one("select created_at, doc_json from runs where run_id = ?", (run_id,))
        if not row:
            return None
        return {"run_id": run_id, "created_at": row[0], "run": json.loads(row[1])}

    def all_runs(self) -> list[dict]:
        """Every stored run as get_run gives it, oldest first (for merging runs across a device class)."""
        rows = self.query(f"select run_id, created_at, doc_json from runs order by {self._ORDER}")
        return [{"run_id": r[0], "created_at": r[1], "run": json.loads(r[2])} for r in reversed(rows)]

    def latest_run_id(self) -> str | None:
        row = self._one(f"select run_id from runs order by {self._ORDER} limit 1")
        return row[0] if row else None

    _MCOLS = ("seq", "kernel", "rows", "cols", "k", "case_name", "shape_json", "dtype", "params_json", "ok", "error",
              "timer", "median_ms", "min_ms", "spread", "kernel_ms", "clock")

    def measurements(self, run_id: str) -> list[dict]:
        """A run's measurements as rows of the measurements table (in posted order; [] for an unknown run). For
        queries across runs, use SQL on that table directly (`query`)."""
        rows = self.query(f"select {', '.join(self._MCOLS)} from measurements where run_id = ? order by seq",
                          (run_id,))
        out = []
        for r in rows:
            m = dict(zip(self._MCOLS, r))
            m["case"] = m.pop("case_name")
            shape = m.pop("shape_json")
            m["shape"] = json.loads(shape) if shape is not None else None
            m["params"] = json.loads(m.pop("params_json"))
            m["ok"] = bool(m["ok"])
            out.append(m)
        return out

    def count(self) -> int:
        return self._one("select count(*) from runs")[0]
