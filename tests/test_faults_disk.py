"""A full disk under the SQLite store, on a real small filesystem: a 4 MiB tmpfs mounted by the test (root or
CAP_SYS_ADMIN; skipped, saying so, where mounting is not permitted). Another file takes most of it, runs are posted
until the disk is full; the post that cannot be stored gets 507 naming the cause, the database stays intact, and
once the other file is gone the same post is stored, without restarting the server."""
from __future__ import annotations

import errno
import sqlite3
import subprocess

import httpx
import pytest

from conftest import make_run, start_server


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted at tmp_path/small for this test."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a 4 MiB tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def big_run() -> dict:
    """A run of 600 measurements (about 400 KB as stored)."""
    doc = make_run()
    doc["measurements"] = doc["measurements"] * 30
    return doc


def fill(path, leave: int) -> None:
    """Write `path` until the filesystem has at most `leave` bytes free."""
    import os
    with open(path, "wb") as f:
        try:
            while os.statvfs(path).f_bavail * os.statvfs(path).f_frsize > leave:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def integrity(db) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("pragma integrity_check").fetchone()[0]
    finally:
        con.close()


def test_a_full_disk_answers_507_keeps_the_database_intact_and_recovers_when_space_is_freed(small_disk):
    db, other = small_disk / "tuner.sqlite3", small_disk / "someone-elses-file"
    server = start_server(db)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            fill(other, leave=1 << 20)                         # 1 MiB left for the database
            stored, refused = [], None
            for _ in range(20):
                doc = big_run()
                r = c.post("/api/runs", json=doc)
                if r.status_code != 201:
                    refused = (doc, r)
                    break
                stored.append(doc)
            assert refused is not None, "20 runs of 400 KB fitted in 1 MiB"
            doc, r = refused
            assert r.status_code == 507, r.text
            assert "full" in r.json()["detail"] and str(db) in r.json()["detail"]
            assert stored, "not even one run fitted: the test proves nothing about the database after a refusal"
            assert integrity(db) == "ok"
            assert c.get(f"/api/runs/{doc['run_id']}").status_code == 404         # nothing half-stored
            listed = {x["run_id"] for x in c.get("/api/runs?limit=1000").json()}   # reads go on while it is full
            assert listed == {d["run_id"] for d in stored}
            other.unlink()                                                         # space freed
            assert c.post("/api/runs", json=doc).status_code == 201
            assert c.get(f"/api/runs/{doc['run_id']}").json()["run"] == doc
            for d in stored:
                assert c.get(f"/api/runs/{d['run_id']}").json()["run"] == d
    finally:
        server.stop()
    assert integrity(db) == "ok"
    print(f"\nfull disk: {len(stored)} runs of 600 measurements stored in the 1 MiB left, the next answered 507, "
          "stored after the other file was removed; integrity_check ok before and after")
