"""Load on the real server: N clients (default 64) for S seconds (default 60), each in a loop of mixed requests:
posts of new runs, and reads of the run list, a run, its quality report, its heuristics.rs and the latest run's
heuristics.rs. Prints per request kind and in all: count, latency p50 / p95 / p99 / max, throughput, errors (any
answer but 2xx, or no answer); exits 1 if there was an error.

The server is started here as `spiraltorch-tuner serve` on a free 127.0.0.1 port (only loopback traffic), on a new
SQLite file or (--store postgres) a throwaway PostgreSQL cluster started here (initdb + pg_ctl, unix socket only;
as the `postgres` user when run as root) or the database of --database-url; everything is stopped at the end.

    .venv/bin/python bench/load.py --store sqlite
    .venv/bin/python bench/load.py --store postgres
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import free_port, wait_up  # noqa: E402  (the test suite's: a free loopback port, a server's start)

# request kind -> weight in the mix (posts are one in four)
MIX = {"post run": 25, "list runs": 20, "get run": 15, "report": 15, "run heuristics.rs": 15,
       "latest heuristics.rs": 10}
SEED_RUNS = 20


def sample_run() -> dict:
    """A run document like a quick browser run: TopK on three shapes, 1CE at three workgroup sizes and 2CE where its
    chunk is legal (k <= ch < cols), where_nd on one shape, two cases, three configurations."""
    ms = []
    for rows, cols, k in ((4, 1024, 8), (4, 4096, 64), (2, 16384, 256)):
        for use_2ce, wg, ch in ((False, 64, 0), (False, 128, 0), (False, 256, 0), (True, 64, 1024), (True, 128, 1024),
                                (True, 256, 4096)):
            if use_2ce and not k <= ch < cols:
                continue
            t = random.uniform(0.5, 3.0)
            ms.append({"kernel": "topk", "rows": rows, "cols": cols, "k": k,
                       "params": {"use_2ce": use_2ce, "wg": wg, "kl": 4, "ch": ch, "sg": False},
                       "ok": True, "timer": "timestamp", "median_ms": t, "min_ms": t * 0.95, "spread": 0.1,
                       "samples_ms": [t * 0.95, t, t * 1.05]})
    for case in ("contiguous", "neg_stride"):
        for path, vpt in (("direct", 1), ("direct", 4), ("segmented", 1)):
            t = random.uniform(1.0, 5.0)
            ms.append({"kernel": "where_nd", "case": case, "shape": [4, 64, 256], "dtype": "float32",
                       "params": {"path": path, "wg": 128, "vpt": vpt}, "ok": True, "timer": "wall",
                       "median_ms": t, "min_ms": t * 0.9, "spread": 0.2, "samples_ms": [t]})
    return {"run_id": uuid.uuid4().hex, "label": "load", "source": "browser",
            "adapter": {"vendor": "bench", "architecture": "load", "device": "", "description": ""},
            "features": ["timestamp-query"], "preset": "quick", "space": {"seed": 1, "repeats": 3, "warmups": 1},
            "timer": "timestamp", "status": "complete", "duration_s": 10.0, "measurements": ms}


@contextmanager
def throwaway_postgres():
    """The URL of a database in a PostgreSQL cluster made for this benchmark in a temporary directory."""
    bindir = next((d for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
                   if os.path.exists(f"{d}/initdb")), None)
    if bindir is None and shutil.which("initdb"):
        bindir = os.path.dirname(shutil.which("initdb"))
    if bindir is None:
        sys.exit("PostgreSQL is not installed (no initdb); give --database-url or install postgresql")
    d, port = tempfile.mkdtemp(prefix="spiraltorch-load-pg-"), free_port()
    as_user = []
    if os.getuid() == 0:                      # initdb refuses root
        import pwd
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    pg_ctl = [*as_user, f"{bindir}/pg_ctl", "-D", f"{d}/data"]
    subprocess.run([*as_user, f"{bindir}/initdb", "-D", f"{d}/data", "-A", "trust", "-U", "postgres", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*pg_ctl, "-l", f"{d}/log", "-w", "-o", f"-p {port} -k {d} -c listen_addresses='' "
                    "-c max_connections=200", "start"], check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@/postgres?host={d}&port={port}"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


@contextmanager
def server(store: str, database_url: str | None):
    """The base URL of `spiraltorch-tuner serve` on a free loopback port, on SQLite or on `database_url`."""
    tmp = tempfile.mkdtemp(prefix="spiraltorch-load-")
    port = free_port()
    env = dict(os.environ)
    env.pop("SPIRALTORCH_DATABASE_URL", None)
    if store == "postgres":
        env["SPIRALTORCH_DATABASE_URL"] = database_url
    proc = subprocess.Popen([sys.executable, "-m", "spiraltorch_tuner.server", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--db", f"{tmp}/load.sqlite3"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_up(url, proc, timeout=60, log=f"{tmp}/server.log")
        except RuntimeError as e:
            sys.exit(str(e))
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log = open(f"{tmp}/server.log", errors="replace").read().splitlines()
        trouble = [ln for ln in log if not ln.startswith("INFO")][1:]       # the first line names the database
        if trouble:
            print("server log (warnings and errors):\n" + "\n".join(trouble[-30:]))
        shutil.rmtree(tmp, ignore_errors=True)


async def client(c: httpx.AsyncClient, ids: list, until: float, out: list):
    kinds, weights = list(MIX), list(MIX.values())
    while time.perf_counter() < until:
        kind = random.choices(kinds, weights)[0]
        run_id = random.choice(ids)
        path = {"list runs": "/api/runs?limit=50", "get run": f"/api/runs/{run_id}",
                "report": f"/api/runs/{run_id}/report", "run heuristics.rs": f"/api/runs/{run_id}/heuristics.rs",
                "latest heuristics.rs": "/api/heuristics.rs?run=latest"}.get(kind)
        doc = sample_run() if kind == "post run" else None
        t0 = time.perf_counter()
        try:
            r = await (c.post("/api/runs", json=doc) if doc else c.get(path))
            err = None if 200 <= r.status_code < 300 else f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            err = f"{type(e).__name__}: {e}"
        out.append((kind, time.perf_counter() - t0, err))
        if doc and err is None:
            ids.append(doc["run_id"])


async def load(url: str, clients: int, seconds: float) -> list:
    # idle connections are dropped after 2 s, before the server's keep-alive timeout (uvicorn: 5 s), so that no
    # request goes out on a connection the server is closing (httpx's default 5 s races uvicorn's)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        ids = []
        for _ in range(SEED_RUNS):
            doc = sample_run()
            (await c.post("/api/runs", json=doc)).raise_for_status()
            ids.append(doc["run_id"])
        out: list = []
        until = time.perf_counter() + seconds
        await asyncio.gather(*(client(c, ids, until, out) for _ in range(clients)))
        return out


def summarize(out: list, wall: float) -> int:
    def row(name, lat, n_err):
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
        print(f"{name:<22} {len(lat):>7} {len(lat) / wall:>8.1f} {q[49] * 1e3:>8.1f} {q[94] * 1e3:>8.1f} "
              f"{q[98] * 1e3:>8.1f} {max(lat) * 1e3:>8.1f} {n_err:>6}")
    print(f"{'request':<22} {'count':>7} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'errors':>6}")
    for kind in MIX:
        mine = [x for x in out if x[0] == kind]
        if mine:
            row(kind, [x[1] for x in mine], sum(1 for x in mine if x[2]))
    errors = [x for x in out if x[2]]
    row("all", [x[1] for x in out], len(errors))
    for kind, _, err in errors[:10]:
        print(f"error: {kind}: {err}")
    return len(errors)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--database-url", help="with --store postgres: this database instead of a throwaway cluster")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    random.seed(1)
    with (throwaway_postgres() if args.store == "postgres" and not args.database_url else _given(args.database_url)) \
            as db_url, server(args.store, db_url) as url:
        t0 = time.perf_counter()
        out = asyncio.run(load(url, args.clients, args.seconds))
        wall = time.perf_counter() - t0
    print(f"{args.clients} clients for {args.seconds:g} s on {args.store} ({os.cpu_count()} CPUs): {len(out)} requests "
          f"in {wall:.1f} s, {len(out) / wall:.1f} per s")
    return 1 if summarize(out, wall) else 0


@contextmanager
def _given(url):
    yield url


if __name__ == "__main__":
    sys.exit(main())
