"""Storage of runs: SQLite (the default: one file, WAL mode) or PostgreSQL (a team's shared database, server/db.py),
the same tables and semantics on both: one transaction per run, idempotent on the client's run id.
`open_store(settings)` picks the backend from `Settings.database_url`; what both share is in server/tables.py."""
from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading

from .tables import (V2_COLUMNS, V2_UPDATE, RETRY_AFTER_S, RUN_COLS, Conflict, Reads, StoreFull,  # noqa: F401
                     StoreUnavailable, canonical, measurement_rows, run_row, v2_backfill)

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
