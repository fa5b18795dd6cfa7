"""PostgreSQL storage of runs (psycopg 3), for a team sharing one tuning database: the tables and semantics of the
SQLite store (server/store.py): idempotent run_id, a different body under a stored id is a Conflict, one transaction
per run. The app creates and migrates the schema itself (`schema_version` holds the applied version)."""
from __future__ import annotations

import hashlib
import threading

from .tables import (V2_UPDATE, RUN_COLS, Conflict, Reads, StoreFull, StoreUnavailable, canonical, measurement_rows,
                     run_row, v2_backfill)

CONNECT_TIMEOUT_S = 5      # a database host that does not answer: 503 after this, not a request hanging

def _fill_v2(con) -> None:
    """Schema 2's columns of the runs stored before it, from their documents."""
    with con.cursor() as cur:
        cur.executemany(_pg(V2_UPDATE), v2_backfill(con.execute("select run_id, doc_json from runs").fetchall()))


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


# Migrations in order: (version, DDL, then what fills data in, or None). A new schema change is a new entry;
# applied ones never change.
MIGRATIONS = [
    (1, """
create table if not exists runs (
    run_id text primary key,
    created_at text not null,
    label text, source text, status text, preset text,
    adapter_json text not null, features_json text not null,
    n_measurements integer not null, n_ok integer not null, duration_s double precision,
    body_sha256 text not null,
    doc_json text not null,
    ord bigint generated always as identity      -- insertion order (SQLite's rowid), for newest-first listings
);
create table if not exists measurements (
    run_id text not null references runs(run_id),
    seq integer not null,
    kernel text not null,
    rows integer, cols integer, k integer,
    case_name text, shape_json text, dtype text,
    params_json text not null,
    ok integer not null, error text, timer text,
    median_ms double precision, min_ms double precision, spread double precision,
    primary key (run_id, seq)
);
create index if not exists runs_created on runs(created_at);
""", None),
    # the measurements' kernel_ms and clock (server/tables.py V2_COLUMNS), filled from the stored run documents
    (2, """
alter table measurements add column if not exists kernel_ms double precision;
alter table measurements add column if not exists clock double precision;
""", _fill_v2),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
_LOCK = 0x5717_7041        # pg_advisory_xact_lock key: app instances starting at once migrate one at a time


class PgStore(Reads):
    """Runs in a PostgreSQL database given by a URL (postgresql://user@host/db). Thread-safe: a connection per
    thread; concurrent writers of one run id are ordered by the primary key (insert ... on conflict do nothing).

    A database that restarts is met as a team meets it: while it is down every call raises StoreUnavailable (the
    app's 503), a connection that the restart broke is replaced on its next use, and a full disk raises StoreFull."""

    _ORDER = "created_at desc, ord desc"

    def __init__(self, url: str):
        import psycopg                     # only needed when PostgreSQL is configured
        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        self.migrate()

    def _con(self):
        con = getattr(self._local, "con", None)
        if con is None or con.closed:
            self._local.con = None
            con = self._psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            self._local.con = con
        return con

    def _drop(self) -> None:
        con, self._local.con = getattr(self._local, "con", None), None
        if con is not None:
            try:
                con.close()
            except Exception:      # closing a broken connection may fail as well; it is dropped either way
                pass

    def _call(self, fn):
        """fn(connection), with the database's faults mapped: a connection that broke since its last use (the
        server restarted) is replaced and fn tried once more (every call here is idempotent: put_run inserts with
        `on conflict do nothing`); still unreachable -> StoreUnavailable; disk full -> StoreFull."""
        errors = self._psycopg.errors
        for attempt in (0, 1):
            reused = getattr(self._local, "con", None) is not None
            try:
                return fn(self._con())
            except errors.DiskFull as e:
                raise StoreFull(f"the PostgreSQL database's disk is full ({_first_line(e)}); nothing was stored; "
                                "free space on the database server and post again") from None
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as e:
                self._drop()
                if attempt == 0 and reused:
                    continue
                raise StoreUnavailable(f"the PostgreSQL database is unavailable ({_first_line(e)}); nothing was "
                                       "stored; retry later") from None

    def migrate(self) -> int:
        """Create the tables or bring them to SCHEMA_VERSION; returns the version now in the database."""
        return self._call(self._migrate)

    def _migrate(self, con) -> int:
        with con.transaction():
            con.execute("select pg_advisory_xact_lock(%s)", (_LOCK,))
            con.execute("create table if not exists schema_version (version integer not null)")
            have = con.execute("select max(version) from schema_version").fetchone()[0] or 0
            for version, ddl, fill in MIGRATIONS:
                if version > have:
                    con.execute(ddl)
                    if fill is not None:
                        fill(con)
                    con.execute("delete from schema_version")
                    con.execute("insert into schema_version values (%s)", (version,))
                    have = version
        return have

    def query(self, sql: str, params=()) -> list[tuple]:
        return self._call(lambda con: con.execute(_pg(sql), params).fetchall())

    def put_run(self, doc: dict) -> tuple[bool, dict]:
        """Store a run in one transaction; (created, summary) as Store.put_run, Conflict on another body."""
        body = canonical(doc)
        sha = hashlib.sha256(body).hexdigest()
        created = self._call(lambda con: self._insert(con, doc, body, sha))
        return created, self.summary(doc["run_id"])

    def _insert(self, con, doc: dict, body: bytes, sha: str) -> bool:
        with con.transaction():
            got = con.execute(_pg(f"insert into runs ({RUN_COLS}) values (?,?,?,?,?,?,?,?,?,?,?,?,?) "
                                  "on conflict (run_id) do nothing returning run_id"),
                              run_row(doc, sha, body)).fetchone()
            if got is None:                # already stored (a concurrent insert waited for the other to commit)
                row = con.execute("select body_sha256 from runs where run_id = %s", (doc["run_id"],)).fetchone()
                if row[0] != sha:
                    raise Conflict(f"run {doc['run_id']} is already stored with a different body")
                created = False
            else:
                with con.cursor() as cur:
                    cur.executemany(_pg("insert into measurements values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"),
                                    measurement_rows(doc))
                created = True
        return created

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop()


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
