"""Storage of runs: SQLite (the default: one file, WAL mode) or PostgreSQL (a team's shared database, server/db.py),
the same tables and semantics on both: one transaction per run, idempotent on the client's run id.
`open_store(settings)` picks the backend from `Settings.database_url`."""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import sqlite3
import threading

SCHEMA_VERSION = 2
SCHEMA = """
create table if not exists schema_version (version integer not null);
create table if not exists runs (
    run_id text primary key,
    created_at text not null,
    label text, source text, status text, preset text,
    adapter_json text not null, features_json text not null,
    n_measurements integer not null, n_ok integer not null, duration_s real,
    body_sha256 text not null,
    doc_json text not null
);
create table if not exists measurements (
    run_id text not null references runs(run_id),
    seq integer not null,
    kernel text not null,
    rows integer, cols integer, k integer,
    case_name text, shape_json text, dtype text,
    params_json text not null,
    ok integer not null, error text, timer text,
    median_ms real, min_ms real, spread real,
    kernel_ms real, clock real,
    primary key (run_id, seq)
);
create index if not exists runs_created on runs(created_at);
"""
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


# SQLite primary result codes (sqlite3.h) that say a part around the database failed, not the request
_SQLITE_FULL = 13
_SQLITE_UNAVAILABLE = {5: "the database is locked by another writer", 6: "a table is locked",
                       10: "disk I/O error", 14: "the database file cannot be opened"}


@contextlib.contextmanager
def _sqlite_faults(path: str):
    """sqlite3's errors of a full disk as StoreFull and of a locked or failing file as StoreUnavailable."""
    try:
        yield
    except sqlite3.OperationalError as e:
        code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
        if code == _SQLITE_FULL:
            raise StoreFull(f"the disk holding the SQLite database {path} is full ({e}); nothing was stored; "
                            "free space there and post again") from None
        if code in _SQLITE_UNAVAILABLE:
            raise StoreUnavailable(f"the SQLite database {path} is unavailable: {_SQLITE_UNAVAILABLE[code]} ({e}); "
                                   "retry later") from None
        raise


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


def open_store(settings) -> "Reads":
    """The store the settings name: PostgreSQL when `database_url` is set (postgresql://...), else the SQLite file
    at `db_path`."""
    url = getattr(settings, "database_url", None)
    if url:
        from .db import PgStore                 # psycopg is imported only when PostgreSQL is used
        return PgStore(url)
    return Store(settings.db_path)


class Store(Reads):
    """Runs in one SQLite file. Thread-safe: a connection per thread, writes serialized by a lock."""

    def __init__(self, path: str):
        self.path = str(path)
        self._local = threading.local()
        self._write = threading.Lock()
        con = self._con()
        with self._write:
            con.execute("begin immediate")
            try:
                fresh = not con.execute("select 1 from sqlite_master where name = 'schema_version'").fetchone()
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                have = con.execute("select max(version) from schema_version").fetchone()[0] or 0
                if not fresh and have < 2:
                    cols = {r[1] for r in con.execute("pragma table_info(measurements)")}
                    for c in V2_COLUMNS:
                        if c not in cols:
                            con.execute(f"alter table measurements add column {c} real")
                    runs = con.execute("select run_id, doc_json from runs").fetchall()
                    con.executemany(V2_UPDATE, v2_backfill(runs))
                if have != SCHEMA_VERSION:
                    con.execute("delete from schema_version")
                    con.execute("insert into schema_version values (?)", (SCHEMA_VERSION,))
                con.execute("commit")
            except BaseException:
                if con.in_transaction:
                    con.execute("rollback")
                raise

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            con.execute("pragma journal_mode=wal")
            con.execute("pragma synchronous=full")
            con.execute("pragma foreign_keys=on")
            self._local.con = con
        return con

    def put_run(self, doc: dict) -> tuple[bool, dict]:
        """Store a run in one transaction. Returns (created, summary); the same id and body again is not an error
        (created False); the same id with another body raises Conflict."""
        with _sqlite_faults(self.path):
            return self._put_run(doc)

    def _put_run(self, doc: dict) -> tuple[bool, dict]:
        body = canonical(doc)
        sha = hashlib.sha256(body).hexdigest()
        con = self._con()
        with self._write:                       # one writer in this process; `begin immediate` for other processes
            con.execute("begin immediate")
            try:
                row = con.execute("select body_sha256 from runs where run_id = ?", (doc["run_id"],)).fetchone()
                if row:
                    con.execute("rollback")
                    if row[0] != sha:
                        raise Conflict(f"run {doc['run_id']} is already stored with a different body")
                    return False, self.summary(doc["run_id"])
                con.execute(f"insert into runs ({RUN_COLS}) values (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            run_row(doc, sha, body))
                con.executemany("insert into measurements values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                measurement_rows(doc))
                con.execute("commit")
            except Conflict:
                raise
            except BaseException:
                if con.in_transaction:
                    con.execute("rollback")
                raise
        return True, self.summary(doc["run_id"])

    def query(self, sql: str, params=()) -> list[tuple]:
        with _sqlite_faults(self.path):
            return self._con().execute(sql, params).fetchall()

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
