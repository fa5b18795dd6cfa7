"""PostgreSQL stopped and started again under load, on the session's real throwaway cluster (tests/test_store_pg.py):
fast shutdown in the middle of a burst of posts from 8 clients, and in the middle of `spiraltorch-tuner import`.
Nothing acknowledged is lost or stored twice, the outage is answered 503 with Retry-After (the CLI waits it out),
and the server and the CLI reconnect by themselves."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import make_run, start_server
from test_store_pg import pg_cluster, pg_url  # noqa: F401  (pg_url: a fixture)

OUTAGE_S = 3.0
TIME_LIMIT_S = 10.0          # the server's native_timeout_s here: no request may take longer


def stored_runs(url: str) -> dict:
    """{run_id: (number of rows with that id, doc_json, measurement rows)} straight from the database."""
    import psycopg
    with psycopg.connect(url) as con:
        rows = con.execute("select r.run_id, count(*) over (partition by r.run_id), r.doc_json, "
                           "(select count(*) from measurements m where m.run_id = r.run_id) from runs r").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def wait_for(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture()
def cluster(pg_url):  # noqa: F811
    """The session's cluster, running again after the test whatever happened in it."""
    c = pg_cluster()
    yield c
    if subprocess.run([*c.pg_ctl, "status"], capture_output=True).returncode != 0:
        c.start()


def test_postgres_restart_mid_burst_answers_503_and_loses_no_acknowledged_run(tmp_path, pg_url, cluster):  # noqa: F811
    server = start_server(tmp_path / "unused.sqlite3", database_url=pg_url, native_timeout_s=TIME_LIMIT_S)
    acked, answers, lock, stop = {}, [], threading.Lock(), threading.Event()

    def client():
        with httpx.Client(base_url=server.url, timeout=60) as c:
            while not stop.is_set():
                doc = make_run()
                while not stop.is_set():               # as a client should: the same run again after a 503
                    t0 = time.perf_counter()
                    r = c.post("/api/runs", json=doc)
                    with lock:
                        answers.append((time.time(), r.status_code, r.headers.get("retry-after"),
                                        r.json().get("detail"), time.perf_counter() - t0))
                        if r.status_code in (200, 201):
                            acked[doc["run_id"]] = (doc, time.time())
                    if r.status_code != 503:
                        break
                    time.sleep(0.1)
    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(acked) >= 40, 60, "40 acknowledged runs before the outage")
        cluster.halt("fast")
        down_at = time.time()
        r = httpx.get(server.url + "/api/runs", timeout=TIME_LIMIT_S)    # reads meet the outage too
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
        assert "PostgreSQL database is unavailable" in r.json()["detail"]
        time.sleep(max(0.0, down_at + OUTAGE_S - time.time()))
        cluster.start()
        up_at = time.time()
        wait_for(lambda: sum(t > up_at for _, t in acked.values()) >= 40, 60, "40 runs acknowledged after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        server.stop()

    statuses = [a[1] for a in answers]
    unavailable = [a for a in answers if a[1] == 503]
    assert set(statuses) <= {200, 201, 503}, sorted(set(statuses))
    assert unavailable, "no request met the outage"
    assert all(a[2] and int(a[2]) >= 1 and "PostgreSQL database is unavailable" in a[3] for a in unavailable)
    slowest = max(a[4] for a in answers)
    assert slowest < TIME_LIMIT_S, f"a request took {slowest:.1f} s"
    stored = stored_runs(pg_url)
    assert all(n == 1 for n, _, _ in stored.values())                    # exactly once
    for run_id, (doc, _) in acked.items():
        assert run_id in stored, f"acknowledged run {run_id} is lost"
        assert json.loads(stored[run_id][1]) == doc and stored[run_id][2] == len(doc["measurements"])
    print(f"\nPostgreSQL restart: {len(answers)} POST /api/runs from 8 clients, {len(acked)} runs acknowledged "
          f"({statuses.count(201)} x 201, {statuses.count(200)} x 200), {len(unavailable)} x 503 with Retry-After "
          f"during a {up_at - down_at:.1f} s outage, 0 other; slowest answer {slowest * 1e3:.0f} ms; all acknowledged "
          f"runs stored exactly once; {len(stored)} stored in all")


def test_import_waits_out_a_postgres_restart_and_stores_every_file_once(tmp_path, pg_url, cluster):  # noqa: F811
    docs = [make_run() for _ in range(600)]
    files = []
    for i, doc in enumerate(docs):
        files.append(tmp_path / f"run{i:04d}.json")
        files[-1].write_text(json.dumps(doc))
    env = {**os.environ, "SPIRALTORCH_DATABASE_URL": pg_url}
    proc = subprocess.Popen([sys.executable, "-m", "spiraltorch_tuner.server", "import", "--wait", "60",
                             *map(str, files)], env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: sum(" stored " in ln for ln in lines) >= 20 or proc.poll() is not None, 60,
                 "the import to store 20 runs")
        cluster.halt("fast")
        time.sleep(OUTAGE_S)
        cluster.start()
        assert proc.wait(120) == 0, "".join(lines[-20:])
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(10)
    per_file = [ln for ln in lines if ln.startswith(str(tmp_path))]
    assert len(per_file) == len(files) and all("stored" in ln for ln in per_file), per_file[:5]
    assert any("PostgreSQL database is unavailable" in ln and "waiting" in ln for ln in lines), \
        "the import did not meet the outage (it finished first?)"
    assert any("the database is back" in ln for ln in lines)
    stored = stored_runs(pg_url)
    assert set(stored) == {d["run_id"] for d in docs} and all(n == 1 for n, _, _ in stored.values())
    print(f"\nimport across a PostgreSQL restart: {len(files)} files, all stored exactly once; "
          f"{sum('already stored' in ln for ln in per_file)} found already stored on the retry after the outage")
