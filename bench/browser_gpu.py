"""Run the tuner page in a real Chromium on this machine's GPU and keep what it posts: the server started here (its
own SQLite file), Chromium driven over the DevTools protocol on a pipe (no Playwright, no Node: stdlib only), the
page opened with ?autorun=1, the run document it posted saved as JSON, a screenshot of the page after the run.

    python3 bench/browser_gpu.py --chromium PREFIX/chromium --out DIR                  # probe, then both runs
    python3 bench/browser_gpu.py --chromium /usr/bin/chromium --out DIR --flags default --preset quick

--flags: names of FLAGSETS to try in order (the first whose adapter is not a CPU one is used), or `default`.
--runs, in the order given: `rounded` (timestamps as Chrome gives them to users: rounded to 100 us; the page's
?quantize=100000 does it where this browser does not round, and changes nothing where it does) and `unrounded`
(Chrome's WebGPU developer features on: timestamps as the GPU gives them), `faults` (the quick preset's TopK shapes with the subgroup scan's WGSL made invalid and the device
destroyed after three configurations, to see each row say so and the run go on). bench/browser_gpu.sh carries
Chromium to a GPU machine without network and calls this there.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]   # the checkout: bench/results, the page's files via the package

# Flags every launch gets: headless (the new mode), DevTools over fds 3/4, WebGPU exposed, nothing phoning home.
BASE_FLAGS = ["--headless=new", "--no-sandbox", "--remote-debugging-pipe", "--no-first-run",
              "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-quic", "--disable-dev-shm-usage", "--disable-crash-reporter",
              "--enable-unsafe-webgpu", "--window-size=1400,900", "--enable-logging=stderr"]
# Ways to reach a GPU headless, tried in this order. default: what a plain --enable-unsafe-webgpu gets (on a machine
# without a display Chromium falls back to SwiftShader).
FLAGSETS = {
    "angle-vulkan": ["--use-angle=vulkan", "--enable-features=Vulkan", "--disable-vulkan-surface",
                     "--ignore-gpu-blocklist"],
    "angle-egl": ["--use-gl=angle", "--use-angle=gl-egl", "--enable-features=Vulkan", "--ignore-gpu-blocklist"],
    "vulkan-native": ["--use-vulkan=native", "--enable-features=Vulkan", "--disable-vulkan-surface",
                      "--ignore-gpu-blocklist", "--use-webgpu-adapter=default"],
    "default": [],
}
# Timestamps as the GPU gives them: Chrome rounds them to 100 us unless its WebGPU developer features are on.
UNROUNDED = ["--enable-webgpu-developer-features", "--disable-dawn-features=timestamp_quantization"]
QUANTUM_NS = 100_000

ADAPTER_JS = """(async () => {
  if (!navigator.gpu) return {error: "navigator.gpu is missing"};
  const a = await navigator.gpu.requestAdapter({powerPreference: "high-performance"});
  if (!a) return {error: "requestAdapter() returned null"};
  const i = a.info || {};
  return {vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
          fallback: !!(i.isFallbackAdapter || a.isFallbackAdapter), features: [...a.features].sort()};
})()"""
GPU_PAGE_JS = """(() => { const v = document.querySelector('info-view');
  return ((v && v.shadowRoot) ? v.shadowRoot : document.body).innerText; })()"""
STATE_JS = """JSON.stringify({done: !!(window.__tuner && window.__tuner.done), n: window.__tuner ? window.__tuner.results.length : 0,
  total: window.__tuner ? window.__tuner.total : 0, runId: window.__tuner && window.__tuner.runId,
  error: window.__tuner && window.__tuner.error, ready: document.querySelector('#adapter-card').dataset.ready || '',
  state: document.body.dataset.state, status: document.getElementById('status').textContent,
  timestamps: window.__tuner && window.__tuner.timestamps || null,
  clockGuard: window.__tuner && window.__tuner.clockGuard || null,
  phases: window.__tuner && window.__tuner.phases || null})"""


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class Chromium:
    """A Chromium process and its DevTools pipe (--remote-debugging-pipe: we write fd 3, it writes fd 4, messages
    end with NUL). `call` sends a command and waits for its answer; events are handed to `on_event`."""

    def __init__(self, exe: str, flags: list[str], env: dict, log_path: Path):
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        # the child's ends at fds >= 5, made fds 3 and 4 by the shell that execs Chromium
        a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in (to_r, from_w))
        os.close(to_r)
        os.close(from_w)
        self.user_dir = tempfile.mkdtemp(prefix="chromium-")
        self.log = open(log_path, "ab")
        self.log.write(f"\n=== {exe} {' '.join(flags)}\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(["bash", "-c", f'exec "$@" 3<&{a} 4>&{b} {a}<&- {b}>&-', "chromium", exe, *flags,
                                      f"--user-data-dir={self.user_dir}", "about:blank"],
                                     env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     pass_fds=(a, b), start_new_session=True)
        os.close(a)
        os.close(b)
        self.next_id, self.answers, self.cv = 0, {}, threading.Condition()
        self.on_event = lambda msg: None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self.from_r, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cv:
                    self.answers[None] = "closed"
                    self.cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self.cv:
                        self.answers[msg["id"]] = msg
                        self.cv.notify_all()
                else:
                    self.on_event(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        with self.cv:
            self.next_id += 1
            i = self.next_id
        msg = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        with self.cv:
            while i not in self.answers:
                if None in self.answers:
                    raise RuntimeError(f"Chromium exited (code {self.proc.poll()}) during {method}")
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"{method}: no answer in {timeout} s")
                self.cv.wait(left)
            ans = self.answers.pop(i)
        if "error" in ans:
            raise RuntimeError(f"{method}: {ans['error']}")
        return ans.get("result", {})

    def page(self, url: str | None = None) -> str:
        """A new tab, at `url` once loaded when given; returns its session id. The first waits for the GPU process
        (SystemInfo.getInfo answers once GPU info is collected): a page that asked for an adapter before that got
        null from requestAdapter() on the H200, the same flags an adapter after it."""
        if not getattr(self, "gpu_info", None):
            self.gpu_info = self.call("SystemInfo.getInfo", timeout=30)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        if url:
            self.goto(s, url)
        return s

    def goto(self, session: str, url: str, timeout: float = 30):
        self.call("Page.navigate", {"url": url}, session)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                href = self.eval(session, "document.readyState === 'complete' && location.href", 5)
                if href and href.split("?")[0] == url.split("?")[0]:
                    return
            except RuntimeError:
                pass           # the old document went away mid-call
            time.sleep(0.1)
        raise TimeoutError(f"{url} did not load in {timeout} s")

    def eval(self, session: str, expr: str, timeout: float = 30):
        r = self.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True, "returnByValue": True},
                      session, timeout)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)       # its own session: the GPU and renderer processes go with it
            self.proc.wait(5)
        for fd in (self.to_w, self.from_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.user_dir, ignore_errors=True)


def is_cpu(adapter: dict) -> bool:
    text = " ".join(str(adapter.get(k) or "") for k in ("vendor", "architecture", "device", "description")).lower()
    return adapter.get("fallback") or any(w in text for w in ("swiftshader", "llvmpipe", "lavapipe"))


def probe(exe, names, env, url, out: Path) -> tuple[str | None, list]:
    """Each flag set in turn until one's adapter is a GPU: its adapter, chrome://gpu's text and whether Chromium lived."""
    seen = []
    # a flag set is tried twice: on the H200 the first Chromium after a fresh start once got no adapter with the flag
    # set that worked the next time
    for name in [n for n in names for _ in (0, 1)]:
        if seen and seen[-1]["flags"] == name and not (seen[-1].get("adapter") or {}).get("error"):
            continue
        t0 = time.time()
        rec = {"flags": name, "argv": BASE_FLAGS + FLAGSETS[name]}
        b = Chromium(exe, BASE_FLAGS + FLAGSETS[name], env, out / "chromium.log")
        try:
            s = b.page(url + "/static/favicon.svg")      # any page of the server: a secure context (localhost)
            rec["adapter"] = b.eval(s, ADAPTER_JS, timeout=20)
            s2 = b.page("chrome://gpu/")
            time.sleep(1)
            rec["chrome_gpu"] = (b.eval(s2, GPU_PAGE_JS, timeout=10) or "")[:12000]
        except Exception as e:                # noqa: BLE001 - a failed try is recorded, the next one runs
            rec["error"] = f"{type(e).__name__}: {e}"
        finally:
            rec["exit_code"] = b.proc.poll()
            b.close()
        rec["seconds"] = round(time.time() - t0, 1)
        seen.append(rec)
        a = rec.get("adapter") or {}
        log(f"probe {name}: {a.get('vendor')} / {a.get('architecture')} / {a.get('description')} "
            f"{rec.get('error') or a.get('error') or ''}")
        if a and not a.get("error") and (not is_cpu(a) or name == "default"):
            rec["default_timestamps"] = default_timestamps(exe, BASE_FLAGS + FLAGSETS[name], env, url, out)
            log(f"probe {name}: Chrome's default timestamps {rec['default_timestamps']}")
            return name, seen
    return None, seen


def default_timestamps(exe, flags, env, url, out: Path) -> dict:
    """The adapter card's check of the page with these flags (no developer features, no ?quantize): whether this
    Chromium rounds WebGPU timestamps ({quantum_ns: 0} when not)."""
    b = Chromium(exe, flags, env, out / "chromium.log")
    try:
        s = b.page()
        b.goto(s, url + "/")
        t0 = time.time()
        while time.time() - t0 < 60:
            st = json.loads(b.eval(s, STATE_JS))
            if st["ready"] and st["timestamps"] is not None:
                return st["timestamps"]
            time.sleep(0.5)
        return {"error": "the adapter card did not check timestamps within 60 s"}
    except Exception as e:            # noqa: BLE001 - recorded, the runs still go on
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        b.close()


def run_page(exe, flags, env, url, query: str, out: Path, name: str, timeout: float, shot: Path | None,
             faults: bool = False) -> dict:
    """The page with ?autorun=1&QUERY until it has posted its run; the run document saved as OUT/browser-NAME.json."""
    b = Chromium(exe, BASE_FLAGS + flags, env, out / "chromium.log")
    t0 = time.time()
    try:
        s = b.page()
        if faults:        # the subgroup scan replaced by invalid WGSL, as an adapter whose compiler rejects it
            def on_event(msg):
                if msg.get("method") == "Fetch.requestPaused":
                    body = base64.b64encode(b"fn inv_lane( -> this is not WGSL").decode()
                    threading.Thread(target=b.call, args=("Fetch.fulfillRequest", {
                        "requestId": msg["params"]["requestId"], "responseCode": 200, "body": body,
                        "responseHeaders": [{"name": "Content-Type", "value": "text/plain"}]}, s)).start()
            b.on_event = on_event
            b.call("Fetch.enable", {"patterns": [{"urlPattern": "*scan_sg.wgsl*"}]}, s)
        b.call("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 900, "deviceScaleFactor": 1,
                                                      "mobile": False}, s)
        b.goto(s, f"{url}/?autorun=1&{query}")
        last, lost = 0.0, False
        while True:
            time.sleep(1)
            st = json.loads(b.eval(s, STATE_JS))
            if faults and not lost and st["n"] >= 3:
                b.eval(s, "window.__tuner.loseDevice()")
                lost = True
            if st["done"]:
                break
            if time.time() - last > 20:
                log(f"{name}: {st['n']}/{st['total']} {st['status']}")
                last = time.time()
            if time.time() - t0 > max(timeout, 1):
                raise TimeoutError(f"{name}: not done after {timeout:.0f} s ({st['n']}/{st['total']})")
        wall = time.time() - t0
        log(f"{name}: {st['status']}")
        if shot:
            b.eval(s, "document.querySelector('#report-summary') && window.scrollTo(0, 0)")
            h = min(2600, int(b.eval(s, "document.documentElement.scrollHeight")))
            png = b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                    "clip": {"x": 0, "y": 0, "width": 1400, "height": h, "scale": 1}},
                         s, timeout=60)["data"]
            shot.write_bytes(base64.b64decode(png))
    finally:
        b.close()
    if not st["runId"] or st["error"]:
        raise RuntimeError(f"{name}: the run was not stored: {st['status']}")
    with urllib.request.urlopen(f"{url}/api/runs/{st['runId']}") as r:
        run = json.loads(r.read())["run"]
    (out / f"browser-{name}.json").write_text(json.dumps(run))
    ms = run["measurements"]
    errors = {}
    for m in ms:
        if not m["ok"]:
            key = (m["error"] or "")[:60]
            errors[key] = errors.get(key, 0) + 1
    q = [m["quantum_ns"] for m in ms if m.get("timer") == "timestamp" and m.get("quantum_ns") is not None]
    log(f"{name}: {sum(m['ok'] for m in ms)}/{len(ms)} ok, page {run['duration_s']:.1f} s, wall {wall:.1f} s, "
        f"adapter {run['adapter']}, timestamps probe {st['timestamps'] and st['timestamps']['quantum_ns']}, "
        f"quantum_ns seen {sorted(set(q))[:5]}, errors {errors}, clock guard {st.get('clockGuard')}, phases (ms) {st.get('phases')}")
    return {"run_id": run["run_id"], "page_s": run["duration_s"], "wall_s": wall, "status": run["status"],
            "ok": sum(m["ok"] for m in ms), "n": len(ms), "errors": errors,
            "probe_quantum_ns": st["timestamps"] and st["timestamps"]["quantum_ns"],
            # the clock guard's work (timing.js guardInfo): retries of a measurement and ms of GPU loading
            "clock_guard": st.get("clockGuard"),
            # where the page's time went: ms per kernel and phase (static/tuner.js Tuner.phases)
            "phases": st.get("phases")}


def compact_log(path: Path, keep: int = 3):
    """Chromium's log with each message (its [pid:tid:time:] prefix left out) kept at most `keep` times: a GPU
    process that cannot make a context repeats the same four lines tens of thousands of times."""
    if not path.exists():
        return
    seen, lines = {}, []
    for line in path.read_text(errors="replace").splitlines():
        key = line.split("]", 1)[-1] if line.startswith("[") else line
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= keep:
            lines.append(line)
    lines += [f"(repeated {n} times) {k}" for k, n in seen.items() if n > keep]
    path.write_text("\n".join(lines) + "\n")


def start_server(db: Path) -> tuple[str, object]:
    import socket

    import uvicorn

    from spiraltorch_tuner.server.app import create_app
    from spiraltorch_tuner.server.settings import Settings
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(port=port, db_path=str(db))), host="127.0.0.1",
                                           port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/api/runs").close()
            return url, server
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chromium", required=True, help="the chromium executable")
    ap.add_argument("--out", required=True, help="folder for the run documents, the screenshot and the logs")
    ap.add_argument("--flags", default="angle-vulkan,angle-egl,vulkan-native",
                    help=f"flag sets to try in order ({', '.join(FLAGSETS)})")
    ap.add_argument("--runs", default="rounded,unrounded",
                    help="rounded, unrounded, faults (comma-separated, run in this order)")
    ap.add_argument("--preset", default="full")
    ap.add_argument("--kernels", default="topk", help="topk, or topk,where_nd (the page's full preset has both)")
    ap.add_argument("--timeout", type=float, default=400, help="seconds for one run of the page")
    ap.add_argument("--budget", type=float, default=1e9,
                    help="seconds for everything: a run is skipped when the one before says it would not fit")
    args = ap.parse_args()
    t_start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))
    url, server = start_server(Path(tempfile.mkdtemp(prefix="tuner-")) / "tuner.sqlite3")
    log(f"server {url}, chromium {args.chromium}")
    summary = {"chromium": args.chromium, "flagsets": FLAGSETS, "base_flags": BASE_FLAGS, "runs": {}}
    name, summary["probe"] = probe(args.chromium, args.flags.split(","), env, url, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if not name:
        log("no flag set reached a GPU: see summary.json (chrome://gpu of each) and chromium.log")
        return 1
    flags = FLAGSETS[name]
    summary["used"] = name
    label = f"browser {args.preset} {args.kernels} ({name})"
    qs = lambda **kw: urllib.parse.urlencode({"preset": args.preset, "kernels": args.kernels, **kw})  # noqa: E731
    runs = args.runs.split(",")

    def fits(what):
        left = args.budget - (time.time() - t_start)
        if summary["runs"] and max(r.get("wall_s", 0) for r in summary["runs"].values()) * 1.2 > left:
            log(f"{what}: skipped, {left:.0f} s left")
            return 0
        return min(args.timeout, left)

    def page_run(key, flags_, query, shot, **kw):
        try:
            summary["runs"][key] = run_page(args.chromium, flags_, env, url, query, out, key, fits(key) or 0, shot,
                                            **kw)
        except Exception as e:      # noqa: BLE001 - recorded; the next run still gets its chance
            summary["runs"][key] = {"error": f"{type(e).__name__}: {e}"}
            log(f"{key}: {type(e).__name__}: {e}")
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        return summary["runs"][key]

    for key in [r for r in runs if r in ("rounded", "unrounded")]:
        if key == "rounded":        # Chrome's rounding; where this Chromium does not round, ?quantize does
            page_run(key, flags, qs(quantize=QUANTUM_NS, label=f"{label}, rounded to 100 us"), out / "page.png")
        else:
            page_run(key, flags + UNROUNDED, qs(label=f"{label}, WebGPU developer features on: unrounded"), None)
    if "faults" in runs and fits("faults"):
        page_run("faults", flags, urllib.parse.urlencode({"preset": "quick", "kernels": "topk",
                                                         "label": "faults: invalid WGSL, device destroyed"}),
                 None, faults=True)
    compact_log(out / "chromium.log")
    server.should_exit = True
    return 0 if all("error" not in r for r in summary["runs"].values()) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
