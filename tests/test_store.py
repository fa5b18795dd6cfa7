"""The store on real databases, with the same assertions on SQLite files and on a throwaway PostgreSQL cluster
(tests/test_store_pg.py starts it): idempotent runs, conflicts, concurrent writers, restarts; and SQLite's WAL mode."""
import sqlite3
import threading

import pytest

from spiraltorch_tuner.server.store import SCHEMA_VERSION, Conflict, Store
from test_store_pg import pg_cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request, tmp_path):
    """`open_store(name="s")`: a store on database `name` of this test (opened again: the same data), on the
    parameter's backend."""
    if request.param == "sqlite":
        return lambda name="s": Store(tmp_path / f"{name}.sqlite3")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    from spiraltorch_tuner.server.db import PgStore
    urls = {}
    return lambda name="s": PgStore(urls.setdefault(name, pg_cluster().new_database()))


def test_opens_in_wal_mode_with_full_sync_and_a_schema_version(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    con = store._con()
    assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert con.execute("pragma synchronous").fetchone()[0] == 2          # FULL
    assert sqlite3.connect(tmp_path / "s.sqlite3").execute("select version from schema_version").fetchall() == \
        [(SCHEMA_VERSION,)]


def timed_run(sample_run):
    """A run whose where_nd measurements carry kernel_ms and clock, as runs on devices with timestamps do."""
    doc = sample_run()
    for n, m in enumerate(doc["measurements"]):
        if m["kernel"] == "where_nd":
            m.update(kernel_ms=0.001 * (n + 1), clock=1.01)
    return doc


def test_kernel_ms_and_clock_are_columns_of_the_measurements_table(open_store, sample_run):
    store = open_store()
    doc = timed_run(sample_run)
    store.put_run(doc)
    ms = store.measurements(doc["run_id"])
    assert [(m.get("kernel_ms"), m.get("clock")) for m in doc["measurements"]] == \
        [(m["kernel_ms"], m["clock"]) for m in ms]
    assert any(m["kernel_ms"] for m in ms)
    assert store.query("select count(*) from measurements where kernel_ms is not null")[0][0] == \
        sum(m["kernel"] == "where_nd" for m in doc["measurements"])


def test_a_version_1_sqlite_file_gets_the_new_columns_filled_from_its_runs(tmp_path, sample_run):
    path = tmp_path / "v1.sqlite3"
    doc = timed_run(sample_run)
    Store(path).put_run(doc)
    con = sqlite3.connect(path)                         # make it what a version 1 app left: no kernel_ms, clock
    con.executescript("alter table measurements drop column kernel_ms; alter table measurements drop column clock; "
                      "update schema_version set version = 1;")
    con.close()
    store = Store(path)
    assert store.query("select version from schema_version") == [(SCHEMA_VERSION,)] and SCHEMA_VERSION == 2
    assert [(m.get("kernel_ms"), m.get("clock")) for m in doc["measurements"]] == \
        [(m["kernel_ms"], m["clock"]) for m in store.measurements(doc["run_id"])]
    other = timed_run(sample_run)
    assert store.put_run(other)[0] and store.measurements(other["run_id"])[-1]["kernel_ms"] is not None
    assert Store(path).count() == 2                     # opening it again migrates nothing


def test_put_is_idempotent_and_a_different_body_conflicts(open_store, sample_run):
    store = open_store()
    doc = sample_run()
    created, summary = store.put_run(doc)
    assert created and summary["run_id"] == doc["run_id"] and summary["n_measurements"] == len(doc["measurements"])
    reordered = dict(reversed(list(doc.items())))                          # same body, other key order
    assert store.put_run(reordered)[0] is False
    with pytest.raises(Conflict):
        store.put_run(dict(doc, label="another"))
    assert store.count() == 1
    assert store.get_run(doc["run_id"])["run"] == doc


def test_measurements_are_rows_queryable_across_runs(open_store, sample_run):
    store = open_store()
    a, b = sample_run(), sample_run()
    store.put_run(a)
    store.put_run(b)
    ms = store.measurements(a["run_id"])
    assert [m["kernel"] for m in ms] == [m["kernel"] for m in a["measurements"]]
    assert ms[0]["params"] == a["measurements"][0]["params"] and ms[0]["ok"] is True
    where = [m for m in ms if m["kernel"] == "where_nd"][0]
    assert where["case"] == "contiguous" and where["shape"] == [4, 64, 256]
    best = store.query("select run_id, min(median_ms) from measurements where kernel = 'topk' and ok = 1 and "
                       "cols = ? group by run_id", (1024,))
    assert sorted(best) == sorted([(a["run_id"], 0.5), (b["run_id"], 0.5)])
    assert store.measurements("nope-nope") == []


def test_concurrent_writers_from_threads_each_store_once(open_store, sample_run):
    store = open_store()
    docs = [sample_run(label=f"run {i}") for i in range(8)]
    results, errors = [], []

    def put(doc):
        try:
            for _ in range(3):                                             # each run posted three times at once
                results.append((doc["run_id"], store.put_run(doc)[0]))
        except Exception as e:                                             # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=put, args=(d,)) for d in docs for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    created = [rid for rid, c in results if c]
    assert sorted(created) == sorted(d["run_id"] for d in docs)           # exactly one creation per run
    assert store.count() == 8
    n = store.query("select count(*) from measurements")[0][0]
    assert n == sum(len(d["measurements"]) for d in docs)


def test_runs_survive_reopening_and_list_newest_first(open_store, sample_run):
    first = open_store()
    docs = [sample_run(label=str(i)) for i in range(3)]
    for d in docs:
        first.put_run(d)
    first.close()
    again = open_store()
    assert [r["label"] for r in again.list_runs()] == ["2", "1", "0"]
    assert [r["label"] for r in again.list_runs(limit=1, offset=1)] == ["1"]
    assert again.latest_run_id() == docs[2]["run_id"]
    assert again.get_run(docs[0]["run_id"])["run"] == docs[0]
    assert again.get_run("missing-id") is None


def test_a_failed_insert_leaves_nothing_behind(open_store, sample_run):
    store = open_store()
    doc = sample_run()
    doc["measurements"].append({"rows": 1})              # no kernel: fails after the runs row went in
    with pytest.raises(Exception):
        store.put_run(doc)
    assert store.count() == 0 and store.measurements(doc["run_id"]) == []
    doc["measurements"].pop()
    assert store.put_run(doc)[0] is True                                   # and the store still works


def test_all_runs_are_every_stored_run_oldest_first(open_store, sample_run):
    store = open_store()
    docs = [sample_run(label=str(i)) for i in range(3)]
    for d in docs:
        store.put_run(d)
    assert [r["run"] for r in store.all_runs()] == docs
