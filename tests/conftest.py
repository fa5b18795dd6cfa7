"""Shared fixtures: a real server on a free loopback port with a temporary SQLite file, apps for TestClient, and
run documents.

- `live_server` (session scope): a uvicorn server on 127.0.0.1:<free port> in a background thread, on its own SQLite
  file. The value IS the base URL (a str, "http://127.0.0.1:PORT", no trailing slash) and also carries `.url`,
  `.db_path`, `.app` (the FastAPI app), `.stop()`. No token, default limits.
- `start_server(db_path, **settings) -> LiveServer`: the same for a test that needs other settings (a token, small
  limits); call `.stop()` when done.
- `make_app` (function scope): the factory `make(tmp_path, **settings) -> FastAPI`, a fresh app on a new SQLite file
  under `tmp_path`; keyword arguments are `Settings` fields (token=, max_body_bytes=, ...). Use with
  `fastapi.testclient.TestClient`.
- `sample_run` (function scope): the factory `make_run(**overrides) -> dict`, a valid run document with a fresh
  run_id; `from conftest import make_run` works too. Its TopK parameters are those of a run from before the radix
  pipeline (no `ls`, `radix`, `rb`, `rch`); `make_radix_run` adds radix measurements.
"""
from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid

import httpx
import pytest
import uvicorn

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))

from spiraltorch_tuner.server.app import create_app  # noqa: E402
from spiraltorch_tuner.server.settings import Settings  # noqa: E402


def run_node(modules, body: str, payload, stderr: bool = False):
    """Runs `body` under node as an ES module that imports each of `modules` (names of static/*.js, as `import *
    as NAME`), with `input` = payload (through JSON); it must print one JSON value, which is returned parsed (with
    node's stderr when `stderr`). The tests of the page's own logic (test_gen_js, test_reference_js,
    test_timing_js) call it."""
    import json
    import subprocess
    from spiraltorch_tuner.paths import ROOT
    script = ("".join(f"import * as {n} from {json.dumps((ROOT / 'static' / f'{n}.js').as_uri())};\n"
                      for n in modules)
              + "const input = JSON.parse(process.argv[1]);\n" + body)
    out = subprocess.run(["node", "--input-type=module", "-e", script, json.dumps(payload)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return (json.loads(out.stdout), out.stderr) if stderr else json.loads(out.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc=None, timeout: float = 30, log=None) -> None:
    """Until the server at `url` answers GET /api/runs; RuntimeError when `proc` (a Popen) exits first or `timeout`
    passes, with the end of its stderr (a pipe) or of the file `log`."""
    deadline = time.time() + timeout
    while True:
        exited = proc is not None and proc.poll() is not None
        if exited or time.time() > deadline:
            tail = (open(log).read() if log else proc.stderr.read().decode() if proc is not None and proc.stderr
                    else "")[-3000:]
            raise RuntimeError(f"the server {f'exited with {proc.returncode}' if exited else 'did not come up'}"
                               f"{'; its log:' + chr(10) + tail if tail else ''}")
        try:
            if httpx.get(url + "/api/runs?limit=1", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


class LiveServer(str):
    """The base URL of a running test server, with the server's handles as attributes."""
    url: str
    db_path: str
    app: object
    server: object
    thread: object

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


def start_server(db_path, **settings) -> LiveServer:
    port = free_port()
    app = create_app(Settings(host="127.0.0.1", port=port, db_path=str(db_path), **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    live = LiveServer(f"http://127.0.0.1:{port}")
    live.url, live.db_path, live.app, live.server, live.thread = str(live), str(db_path), app, server, thread
    return live


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("live") / "tuner.sqlite3")
    yield s
    s.stop()


@pytest.fixture()
def make_app():
    def make(tmp_path, **settings):
        return create_app(Settings(db_path=str(tmp_path / f"{uuid.uuid4().hex[:8]}.sqlite3"), **settings))
    return make


def _topk(rows, cols, k, ms, use_2ce=False, wg=128, kl=4, ch=0, sg=False, ok=True):
    return {"kernel": "topk", "rows": rows, "cols": cols, "k": k,
            "params": {"use_2ce": use_2ce, "wg": wg, "kl": kl, "ch": ch, "sg": sg},
            "ok": ok, "error": None if ok else "wrong result: 3 of 64 indices differ", "timer": "timestamp",
            "median_ms": ms if ok else None, "min_ms": ms * 0.9 if ok else None, "spread": 0.1 if ok else None,
            "samples_ms": [ms * 0.9, ms, ms * 1.1] if ok else []}


def _where(case, shape, ms, path="direct", wg=128, vpt=1):
    return {"kernel": "where_nd", "case": case, "shape": shape, "dtype": "float32",
            "params": {"path": path, "wg": wg, "vpt": vpt}, "ok": True, "error": None, "timer": "wall",
            "median_ms": ms, "min_ms": ms * 0.9, "spread": 0.2, "samples_ms": [ms]}


def make_run(**overrides) -> dict:
    """A valid run document (a fresh random run_id each call): TopK on the quick preset's three shapes, each with
    the configurations of one small grid that are legal there (one failed), where_nd contiguous and neg_stride
    cases. Keys in `overrides` replace the
    document's top-level keys. Importable: `from conftest import make_run`."""
    ms = [
        _topk(4, 1024, 8, 0.9), _topk(4, 1024, 8, 0.5, wg=64, sg=True), _topk(4, 1024, 8, 0.7, wg=64),
        _topk(4, 1024, 8, 1.2, wg=128, kl=8),
        _topk(4, 4096, 64, 2.0), _topk(4, 4096, 64, 1.5, use_2ce=True, ch=1024), _topk(4, 4096, 64, 1.0, ok=False),
        _topk(4, 4096, 64, 2.2, wg=64, sg=True), _topk(4, 4096, 64, 2.4, wg=64), _topk(4, 4096, 64, 2.6, kl=8),
        _topk(2, 16384, 256, 3.0), _topk(2, 16384, 256, 2.5, use_2ce=True, ch=4096, sg=True),
        _topk(2, 16384, 256, 2.7, use_2ce=True, ch=4096), _topk(2, 16384, 256, 2.9, use_2ce=True, ch=1024),
        _topk(2, 16384, 256, 3.3, wg=64, sg=True), _topk(2, 16384, 256, 3.4, wg=64), _topk(2, 16384, 256, 3.6, kl=8),
        _where("contiguous", [4, 64, 256], 3.0), _where("contiguous", [4, 64, 256], 4.0, path="segmented"),
        _where("neg_stride", [4, 64, 256], 3.5), _where("neg_stride", [4, 64, 256], 5.0, path="segmented"),
    ]
    doc = {"run_id": uuid.uuid4().hex, "label": "sample", "source": "browser",
           "adapter": {"vendor": "google", "architecture": "swiftshader", "device": "", "description": ""},
           "features": ["timestamp-query", "subgroups"], "subgroup_sizes": [4, 4],
           "limits": {"maxComputeInvocationsPerWorkgroup": 256}, "user_agent": "pytest", "preset": "custom",
           "space": {"seed": 1, "repeats": 3, "warmups": 1}, "timer": "timestamp",
           "started_at": "2026-11-25T00:00:00Z", "finished_at": "2026-11-25T00:00:10Z", "duration_s": 10.0,
           "status": "complete", "measurements": ms}
    doc.update(overrides)
    return doc


def _radix(rows, cols, k, ms, rb=8, rch=1024, wg=256):
    """A TopK measurement of the radix pipeline (its other parameters at the one value space.json allows)."""
    m = _topk(rows, cols, k, ms, wg=wg)
    m["params"].update(ls=True, radix=True, rb=rb, rch=rch)
    return m


def make_radix_run(**overrides) -> dict:
    """make_run's document plus the radix pipeline (rb 8 and 11, rch 1024 and 2048) measured on every shape where
    it is legal (rch < cols: 4x4096 k=64 and 2x16384 k=256), the fastest there: a run whose rule picks radix for
    long rows and 1CE for 4x1024 k=8. Importable: `from conftest import make_radix_run`."""
    doc = make_run(**overrides)
    for (rows, cols, k), best in (((4, 4096, 64), 0.4), ((2, 16384, 256), 1.0)):
        doc["measurements"] += [_radix(rows, cols, k, best * f, rb=rb, rch=rch)
                                for rb, rch, f in ((8, 1024, 1.0), (8, 2048, 1.2), (11, 1024, 1.3), (11, 2048, 1.4))]
    return doc


@pytest.fixture()
def sample_run():
    """The factory `make_run(**overrides) -> dict` (see there)."""
    return make_run
