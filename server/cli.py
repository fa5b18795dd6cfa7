"""spiraltorch-tuner: serve the tuner, tune natively, list runs, write wgpu_heuristics.rs, print quality reports."""
from __future__ import annotations

import argparse
import json
import sys

from .settings import Settings


def _store(args):
    """The configured store: PostgreSQL when SPIRALTORCH_DATABASE_URL is set, else the SQLite file (--db)."""
    from .store import open_store
    return open_store(Settings.from_env(db_path=args.db))


def cmd_serve(args) -> int:
    import uvicorn

    from spiraltorch_tuner import HeuristicsError, rules

    from .app import create_app
    s = Settings.from_env(host=args.host, port=args.port, db_path=args.db, token=args.token)
    try:
        rules.BOOK.user()
    except HeuristicsError as e:
        print(f"refusing to start: {rules.ENV} points to a bad heuristics source: {e}", file=sys.stderr)
        return 2
    if not s.loopback and not s.token:
        print(f"refusing to bind {s.host}: a non-loopback address needs an API token "
              "(--token or SPIRALTORCH_TOKEN)", file=sys.stderr)
        return 2
    print(f"SpiralTorch Tuner on http://{s.host}:{s.port}/  (database {s.db_path})", file=sys.stderr)
    if args.reload:
        # The reloader re-imports the app in a child process: pass the settings through the environment.
        import os
        from pathlib import Path
        os.environ.update(SPIRALTORCH_HOST=s.host, SPIRALTORCH_PORT=str(s.port), SPIRALTORCH_DB=s.db_path)
        if s.token:
            os.environ["SPIRALTORCH_TOKEN"] = s.token
        here = Path(__file__).resolve().parent
        uvicorn.run("spiraltorch_tuner.server.app:create_app", factory=True, host=s.host, port=s.port, log_level="info",
                    reload=True, reload_dirs=[str(here), str(here.parent / "native")])
    else:
        uvicorn.run(create_app(s), host=s.host, port=s.port, log_level="info")
    return 0


def cmd_tune(args) -> int:
    from spiraltorch_tuner.errors import SpiralTorchError
    from spiraltorch_tuner.tuner import tune

    bar = _Progress(sys.stderr)
    try:
        spec = json.loads(open(args.space, encoding="utf-8").read()) if args.space else None
    except (OSError, ValueError) as e:
        print(f"cannot read the space file {args.space}: {e}", file=sys.stderr)
        return 2
    try:
        doc = tune(args.device, args.preset, spec, label=args.label or "", progress=bar)
    except SpiralTorchError as e:
        bar.close()
        print(f"cannot tune on {args.device}: {e}", file=sys.stderr)
        return 2
    bar.close()
    doc["preset"] = "custom" if spec else args.preset
    _store(args).put_run(doc)
    ok = sum(1 for m in doc["measurements"] if m["ok"])
    print(f"measured {ok}/{len(doc['measurements'])} configurations correctly in {doc['duration_s']:.1f} s on "
          f"{doc['adapter']['description'] or doc['adapter']['device']}; stored as run {doc['run_id']}",
          file=sys.stderr)
    print(doc["run_id"])
    return _heuristics_and_report(args, doc["run_id"])


class _Progress:
    """A one-line progress bar on a terminal (configurations done/total, time left); plain lines otherwise."""

    def __init__(self, stream):
        import time
        self.stream, self.tty, self.t0, self.time = stream, stream.isatty(), time.perf_counter(), time.perf_counter
        self.failed = 0

    def __call__(self, i, n, m):
        if not m["ok"]:
            self.failed += 1
        what = (f"{m['kernel']} {m['rows']}x{m['cols']} k={m['k']}" if m["kernel"] == "topk"
                else f"where_nd {'x'.join(map(str, m['shape']))} {m['case']}")
        params = " ".join(f"{k}={v}" for k, v in m["params"].items())
        t = f"{m['median_ms']:.4g} ms" if m.get("median_ms") else f"FAILED: {m.get('error')}"
        elapsed = self.time() - self.t0
        left = elapsed / i * (n - i)
        if self.tty:
            done = int(30 * i / n)
            self.stream.write(f"\r[{'#' * done}{'.' * (30 - done)}] {i}/{n} {elapsed:5.1f}s, ~{left:4.0f}s left, "
                              f"{self.failed} failed \x1b[K")
            if not m["ok"]:
                self.stream.write(f"\n  {what} {params}: {t}\n")
        else:
            self.stream.write(f"[{i}/{n}] {what} {params} {t}\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")


def _output(args, export) -> str:
    """Write an export where -o says (default: the flavour's own file name); returns the path."""
    path = args.output or export.filename
    with open(path, "w", encoding="utf-8") as f:
        f.write(export.text)
    return path


def _heuristics_and_report(args, run_id) -> int:
    from .exports import export_run
    from .report import format_report, report
    rec = _store(args).get_run(run_id)
    path = _output(args, export_run(rec["run"], args.flavour, run_id=run_id, created_at=rec["created_at"]))
    print(f"wrote {path} ({args.flavour} flavour) from run {run_id}", file=sys.stderr)
    print(format_report(report(rec["run"])), file=sys.stderr)
    return 0


def cmd_heuristics(args) -> int:
    from .exports import export_merged, export_run
    store = _store(args)
    if args.run == "all":
        records = store.all_runs()
        path = _output(args, export_merged(records, args.flavour))
        print(f"wrote {path} ({args.flavour} flavour) from {len(records)} runs merged per device class",
              file=sys.stderr)
        return 0 if records else 1
    run_id = store.latest_run_id() if args.run == "latest" else args.run
    if args.run and run_id is None:
        print("no run stored yet", file=sys.stderr)
        return 1
    if run_id is None:
        print(f"wrote the stub to {_output(args, export_run(None, args.flavour))}", file=sys.stderr)
        return 0
    if store.get_run(run_id) is None:
        print(f"no run {run_id!r}", file=sys.stderr)
        return 1
    return _heuristics_and_report(args, run_id)


def cmd_runs(args) -> int:
    for r in _store(args).list_runs(args.limit):
        a = r["adapter"]
        print(f"{r['run_id']}  {r['created_at']}  {r['source']:<7} {r['status']:<9} {r['n_ok']}/{r['n_measurements']}"
              f"  {a.get('vendor', '')} {a.get('architecture', '')} {a.get('description', '')}  {r['label'] or ''}")
    return 0


def cmd_import(args) -> int:
    """Store run documents (bench/tune_gpu.py output, a browser run's JSON, or GET /api/runs/{id} of another server)
    as POST /api/runs would: validated by the same model, idempotent on run_id, a different body under a stored id
    refused."""
    from pydantic import ValidationError

    from .models import Run, run_document
    from .store import Conflict, StoreFull, StoreUnavailable
    wait = _Waiter(args.wait)
    store, limit = wait(lambda: _store(args)), Settings.from_env(db_path=args.db).max_measurements
    failed = 0
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if isinstance(doc, dict) and isinstance(doc.get("run"), dict) and "created_at" in doc:
                doc = doc["run"]          # GET /api/runs/{id} (the page's "json" link) wraps the run document
            run = Run.model_validate(doc)
            created, _ = wait(lambda: store.put_run(run_document(run, limit)))
        except (OSError, ValueError, Conflict, StoreFull, StoreUnavailable) as e:   # ValueError: bad JSON, a
            failed += 1                                                              # ValidationError, too many
            if isinstance(e, ValidationError):
                why = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:5])
            elif isinstance(e, json.JSONDecodeError):
                why = f"not a JSON document ({e})"
            else:
                why = str(e).splitlines()[0] + ("; give this one a new run_id" if isinstance(e, Conflict) else "")
            print(f"{path}: not imported: {why}", file=sys.stderr)
            continue
        print(f"{path}: run {run.run_id} {'stored' if created else 'already stored'} "
              f"({len(run.measurements)} measurements)", file=sys.stderr)
    return 1 if failed else 0


class _Waiter:
    """Calls that wait out a database outage: `wait(fn)` retries fn while it raises StoreUnavailable (PostgreSQL
    restarting, its connection lost), backing off up to 2 s between tries, for at most `seconds` in all; then the
    last StoreUnavailable is raised. Says once per outage that it waits, and when the database is back."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, fn):
        import time

        from .store import StoreUnavailable
        deadline, delay, waited = time.monotonic() + self.seconds, 0.25, False
        while True:
            try:
                out = fn()
            except StoreUnavailable as e:
                if time.monotonic() + delay > deadline:
                    raise
                if not waited:
                    print(f"{e}; waiting for it up to {self.seconds:g} s (--wait)", file=sys.stderr)
                    waited = True
                time.sleep(delay)
                delay = min(2 * delay, 2.0)
                continue
            if waited:
                print("the database is back; going on", file=sys.stderr)
            return out


def cmd_report(args) -> int:
    from .report import format_report, report, report_classes
    store = _store(args)
    if args.run == "all":
        classes = report_classes(store.all_runs(), args.device_class)["classes"]
        if not classes:
            print("no stored run" + (f" of device class {args.device_class!r}" if args.device_class else ""),
                  file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(classes, indent=2))
            return 0
        for i, r in enumerate(classes):
            n = len(r["runs"])
            print(("\n" if i else "") + f"device class {r['device_class']}: {n} run{'s' if n != 1 else ''} merged")
            print(format_report(r))
        return 0
    if args.device_class:
        print("--device-class needs --run all", file=sys.stderr)
        return 2
    run_id = store.latest_run_id() if args.run == "latest" else args.run
    rec = store.get_run(run_id) if run_id else None
    if rec is None:
        print(f"no run {args.run!r}", file=sys.stderr)
        return 1
    r = report(rec["run"])
    print(json.dumps(r, indent=2) if args.json else format_report(r))
    return 0


def cmd_judge(args) -> int:
    from .report import NothingToJudge, RuleIsJudgedRun, UnknownRun, format_judge, judge, rule_fit
    store = _store(args)
    on_id = store.latest_run_id() if args.on == "latest" else args.on
    on = store.get_run(on_id) if on_id else None
    if on is None:
        print(f"no run {args.on!r} to judge on", file=sys.stderr)
        return 1
    try:
        r = judge(on["run"], *rule_fit(store, on["run"], args.rule))
    except RuleIsJudgedRun as e:
        print(f"--rule: {e}", file=sys.stderr)
        return 2
    except UnknownRun:
        print(f"no run {args.rule!r} to fit the rule on", file=sys.stderr)
        return 1
    except NothingToJudge as e:
        print(str(e), file=sys.stderr)
        return 1
    print(json.dumps(r, indent=2) if args.json else format_judge(r))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subparser per subcommand, each dispatching to its cmd_* (tests/test_docs.py reads it)."""
    from .exports import FLAVOURS
    p = argparse.ArgumentParser(prog="spiraltorch-tuner", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the tuner page and the API")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--db", help="SQLite file (default spiraltorch-tuner.sqlite3)")
    s.add_argument("--token", help="API token for write/native endpoints (required off loopback)")
    s.add_argument("--reload", action="store_true", help="restart when server/ or native/ changes (development)")
    s.set_defaults(fn=cmd_serve)
    # `tune` (the lead's): native tuning through spiraltorch_tuner.tuner; more subcommands go here, each a cmd_* above.
    t = sub.add_parser("tune", help="tune natively (wgpu-py, CUDA, ...) and store the run like a browser run")
    t.add_argument("--backend", "--device", dest="device", default="wgpu",
                   choices=["auto", "cuda", "mps", "wgpu", "cpu"], help="where to run the kernels (default wgpu)")
    t.add_argument("--preset", default="quick", help="a preset of shaders/space.json (quick, full)")
    t.add_argument("--space", help="a JSON file with a custom space (the shape of a preset)")
    t.add_argument("--label")
    t.set_defaults(fn=cmd_tune)
    for name, fn, hlp in (("heuristics", cmd_heuristics, "write wgpu_heuristics.rs from a stored run"),):
        h = sub.add_parser(name, help=hlp)
        h.add_argument("--run", help="a run id, 'latest' or 'all' (every run, merged per device class); none: the stub")
        h.set_defaults(fn=fn)
    for sp in (t, sub.choices["heuristics"]):
        sp.add_argument("--db")
        sp.add_argument("--flavour", default="standalone", choices=FLAVOURS,
                        help="standalone | st-core (SpiralTorch's wgpu_heuristics_generated.rs, 11-field Choice) | "
                        "st-core-v1.3 | wasm-table (SpiralTorch's tuner_results.json) | rules (for "
                        "SPIRALTORCH_TUNER_HEURISTICS)")
        sp.add_argument("-o", "--out", "--output", dest="output",
                        help="where to write the file (default: the flavour's file name, e.g. wgpu_heuristics.rs)")
    r = sub.add_parser("runs", help="list stored runs")
    r.add_argument("--db")
    r.add_argument("--limit", type=int, default=50)
    r.set_defaults(fn=cmd_runs)
    i = sub.add_parser("import", help="store run documents (JSON files) as POST /api/runs would")
    i.add_argument("files", nargs="+", metavar="FILE")
    i.add_argument("--db")
    i.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                   help="while the database is unavailable (a PostgreSQL restart), retry for up to this long (60)")
    i.set_defaults(fn=cmd_import)
    q = sub.add_parser("report", help="quality of the picks of a run (regret, st-core baseline)")
    q.add_argument("--db")
    q.add_argument("--run", default="latest", help="a run id, 'latest' or 'all' (a report per device class, its runs "
                   "merged)")
    q.add_argument("--device-class", help="with --run all: only this class (keys: GET /api/classes)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_report)
    j = sub.add_parser("judge", help="how a TopK rule serves shapes it was not fitted on: fit it on some runs, "
                                     "judge it on another run's shapes (and the where_nd rule on its cases)")
    j.add_argument("--db")
    j.add_argument("--on", default="latest", help="the run whose shapes to judge on: a run id or 'latest'")
    j.add_argument("--rule", default="all", help="the run to fit the rule on: a run id, or 'all': every other stored "
                   "run of the judged run's device class, merged (the tables `heuristics --run all` writes for it)")
    j.add_argument("--json", action="store_true")
    j.set_defaults(fn=cmd_judge)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .store import StoreFull, StoreUnavailable
    try:
        return args.fn(args)
    except (StoreUnavailable, StoreFull) as e:      # the database, not the command: say so instead of a traceback
        print(f"spiraltorch-tuner {args.cmd}: {e}", file=sys.stderr)
        return 3
