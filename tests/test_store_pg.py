"""A throwaway PostgreSQL cluster for the store tests, and the PostgreSQL-only behaviour: the app on a database URL
(201/200/409 over HTTP), schema creation and migration by the app.

`pg_cluster()` starts one cluster per test session (initdb into a temporary directory, pg_ctl on a free port, the
unix socket in that directory, no TCP listener), as the `postgres` user when the tests run as root (PostgreSQL
refuses root). `new_database()` gives a fresh database's URL. Tests skip only when the PostgreSQL binaries are absent.
"""
from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from fastapi.testclient import TestClient

from conftest import free_port


def pg_bin() -> str | None:
    """The directory holding initdb and pg_ctl (Debian's /usr/lib/postgresql/<n>/bin, or on PATH), or None."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.path.exists(f"{d}/initdb") and os.path.exists(f"{d}/pg_ctl"):
            return d
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb and shutil.which("pg_ctl") else None


class PgCluster:
    def __init__(self):
        bindir = pg_bin()
        if bindir is None:
            pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl; Debian: apt-get install postgresql)")
        self.dir = tempfile.mkdtemp(prefix="spiraltorch-pg-")
        self.port = free_port()
        self.as_user = []
        if os.getuid() == 0:                      # initdb refuses root: run the cluster as the postgres user
            import pwd
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL cluster as")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.pg_ctl = [*self.as_user, f"{bindir}/pg_ctl", "-D", f"{self.dir}/data"]
        subprocess.run([*self.as_user, f"{bindir}/initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
        self.start()
        atexit.register(self.stop)

    def start(self):
        """Start the server (again) and wait until it accepts connections."""
        subprocess.run([*self.pg_ctl, "-l", f"{self.dir}/log", "-w", "-t", "60", "-o",
                        f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)

    def halt(self, mode: str = "fast"):
        """Stop the server and keep its data, as an operator's `pg_ctl stop -m fast` does (sessions are ended,
        open transactions rolled back); start() brings it back."""
        subprocess.run([*self.pg_ctl, "-m", mode, "-w", "-t", "60", "stop"], check=True, capture_output=True,
                       timeout=120)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.dir}&port={self.port}"

    def new_database(self) -> str:
        import psycopg
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f"create database {name}")
        return self.url(name)

    def stop(self):
        subprocess.run([*self.pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


_cluster: PgCluster | None = None


def pg_cluster() -> PgCluster:
    """The session's cluster, started on first use and stopped at exit."""
    global _cluster
    if _cluster is None:
        _cluster = PgCluster()
    return _cluster


@pytest.fixture()
def pg_url():
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    return pg_cluster().new_database()


def test_the_app_on_a_database_url_answers_201_200_409(tmp_path, make_app, sample_run, pg_url):
    app = make_app(tmp_path, database_url=pg_url)
    doc = sample_run()
    with TestClient(app) as c:
        assert c.post("/api/runs", json=doc).status_code == 201
        assert c.post("/api/runs", json=doc).status_code == 200
        assert c.post("/api/runs", json=dict(doc, label="other")).status_code == 409
        assert [r["run_id"] for r in c.get("/api/runs").json()] == [doc["run_id"]]
        assert c.get(f"/api/runs/{doc['run_id']}").json()["run"]["label"] == doc["label"]
        assert "pub fn choose_topk" in c.get("/api/heuristics.rs?run=latest").text
    assert not list(tmp_path.glob("*.sqlite3"))                         # nothing went to SQLite


def test_settings_read_the_database_url_from_the_environment(monkeypatch):
    from spiraltorch_tuner.server.settings import Settings
    monkeypatch.setenv("SPIRALTORCH_DATABASE_URL", "postgresql://u@h/db")
    assert Settings.from_env().database_url == "postgresql://u@h/db"
    monkeypatch.delenv("SPIRALTORCH_DATABASE_URL")
    assert Settings.from_env().database_url is None


def test_the_app_creates_and_migrates_the_schema_once(pg_url, sample_run):
    import psycopg
    from spiraltorch_tuner.server.db import SCHEMA_VERSION, PgStore
    a = PgStore(pg_url)
    a.put_run(sample_run())
    b = PgStore(pg_url)                                                  # a second app on the same database
    assert b.count() == 1 and b.migrate() == SCHEMA_VERSION
    with psycopg.connect(pg_url) as con:
        assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]
        con.execute("update schema_version set version = 0")            # as if made by an older version
        con.commit()
    assert PgStore(pg_url).count() == 1                                  # migrating again keeps the data
    with psycopg.connect(pg_url) as con:
        assert con.execute("select version from schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_version_1_database_gets_the_new_columns_filled_from_its_runs(pg_url, sample_run):
    import psycopg
    from spiraltorch_tuner.server.db import SCHEMA_VERSION, PgStore
    from test_store import timed_run
    doc = timed_run(sample_run)
    PgStore(pg_url).put_run(doc)
    with psycopg.connect(pg_url) as con:                                 # as a version 1 app left it
        con.execute("alter table measurements drop column kernel_ms, drop column clock")
        con.execute("update schema_version set version = 1")
        con.commit()
    store = PgStore(pg_url)
    assert store.query("select version from schema_version") == [(SCHEMA_VERSION,)]
    assert [(m.get("kernel_ms"), m.get("clock")) for m in doc["measurements"]] == \
        [(m["kernel_ms"], m["clock"]) for m in store.measurements(doc["run_id"])]
