"""The runs API against real apps on temporary SQLite files: storing, idempotency, validation, limits, security."""
import json
import sqlite3

import pytest
from fastapi.testclient import TestClient

from spiraltorch_tuner.server.app import create_app
from spiraltorch_tuner.server.settings import Settings

OFF = {"radix": False, "rb": 0, "rch": 0}     # the radix pipeline's parameters in a 1CE or 2CE configuration


@pytest.fixture()
def client(make_app, tmp_path):
    with TestClient(make_app(tmp_path, max_body_bytes=2 << 20, max_measurements=1000)) as c:
        yield c


def test_post_is_201_then_200_for_the_same_body_and_409_for_another(client, sample_run):
    doc = sample_run()
    r = client.post("/api/runs", json=doc)
    assert r.status_code == 201, r.text
    assert r.json()["run_id"] == doc["run_id"] and r.json()["created"] is True
    again = client.post("/api/runs", json=doc)
    assert again.status_code == 200 and again.json()["created"] is False
    other = dict(doc, label="changed")
    r = client.post("/api/runs", json=other)
    assert r.status_code == 409 and doc["run_id"] in r.json()["detail"]


def test_runs_read_back_in_full_and_listed_newest_first(client, sample_run):
    a, b = sample_run(label="first"), sample_run(label="second")
    for d in (a, b):
        assert client.post("/api/runs", json=d).status_code == 201
    got = client.get(f"/api/runs/{a['run_id']}").json()
    assert got["run"]["measurements"] == a["measurements"]
    listed = client.get("/api/runs").json()
    assert [r["label"] for r in listed[:2]] == ["second", "first"]
    assert listed[0]["n_measurements"] == len(b["measurements"])
    assert listed[0]["n_ok"] == sum(m["ok"] for m in b["measurements"])


def test_runs_survive_a_restart(tmp_path, sample_run):
    db = tmp_path / "keep.sqlite3"
    doc = sample_run()
    with TestClient(create_app(Settings(db_path=str(db)))) as c:
        assert c.post("/api/runs", json=doc).status_code == 201
    with TestClient(create_app(Settings(db_path=str(db)))) as c:
        assert c.get(f"/api/runs/{doc['run_id']}").json()["run"]["label"] == doc["label"]
    con = sqlite3.connect(db)
    assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert con.execute("select count(*) from measurements where run_id = ?", (doc["run_id"],)).fetchone()[0] == \
        len(doc["measurements"])


def test_unknown_run_is_404_with_message(client):
    for path in ("/api/runs/doesnotexist", "/api/runs/doesnotexist/heuristics.rs", "/api/runs/doesnotexist/report"):
        r = client.get(path)
        assert r.status_code == 404 and "doesnotexist" in r.json()["detail"]


def bad(doc_fn):
    return doc_fn


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.pop("measurements"), "measurements"),
    (lambda d: d.update(run_id="short"), "run_id"),
    (lambda d: d.update(run_id="has spaces in it"), "run_id"),
    (lambda d: d.update(extra_field=1), "extra_field"),
    (lambda d: d["measurements"][0].update(k=0), "k"),
    (lambda d: d["measurements"][0].update(k=5000), "k must be <= cols"),
    (lambda d: d["measurements"][0].update(rows=-1), "rows"),
    (lambda d: d["measurements"][0].update(cols="many"), "cols"),
    (lambda d: d["measurements"][0].update(kernel="matmul"), "kernel"),
    (lambda d: d["measurements"][0].update(median_ms=-1.0), "median_ms"),
    (lambda d: d["measurements"][0]["params"].update(wg="big"), "wg"),
    (lambda d: d["adapter"].update(vendor="x" * 5000), "vendor"),
    (lambda d: d.update(status="exploded"), "status"),
])
def test_invalid_runs_are_422_naming_the_field(client, sample_run, mutate, field):
    doc = sample_run()
    mutate(doc)
    r = client.post("/api/runs", json=doc)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


def test_malformed_json_is_400(client):
    r = client.post("/api/runs", content=b'{"run_id": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["detail"]


def test_too_many_measurements_and_too_large_bodies_are_413(client, sample_run):
    doc = sample_run()
    doc["measurements"] = doc["measurements"][:1] * 1001
    r = client.post("/api/runs", json=doc)
    assert r.status_code == 413 and "1000" in r.json()["detail"]
    r = client.post("/api/runs", content=b"x" * (3 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(2 << 20) in r.json()["detail"]


def test_hostile_text_is_stored_verbatim_and_shown_escaped(client, sample_run):
    evil = '</script><script>alert(1)</script> */ " \n {{ 7*7 }} \u2028 \x01'
    doc = sample_run(label=evil, user_agent=evil, adapter={"vendor": evil, "architecture": "a", "device": "",
                                                           "description": evil})
    assert client.post("/api/runs", json=doc).status_code == 201
    assert client.get(f"/api/runs/{doc['run_id']}").json()["run"]["label"] == evil
    page = client.get("/")
    assert "<script>alert" not in page.text  # the page lists runs from JSON with textContent (browser test)
    rust = client.get(f"/api/runs/{doc['run_id']}/heuristics.rs").text
    assert "\n {{" not in rust and "\u2028" not in rust and "\x01" not in rust


@pytest.mark.parametrize("path", ["/static/..%2fpyproject.toml", "/static/../pyproject.toml",
                                  "/shaders/..%2f..%2fetc%2fpasswd", "/shaders/%2e%2e/pyproject.toml",
                                  "/static//etc/passwd"])
def test_path_traversal_is_404(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "[build-system]" not in r.text and "root:" not in r.text


def test_static_and_shaders_are_served_with_types_and_security_headers(client):
    r = client.get("/shaders/topk.wgsl")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain") and "override WG" in r.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text  # no inline script: every script is a module file
    assert client.post("/static/app.js").status_code in (404, 405)


def test_heuristics_downloads_are_attachments(client, sample_run):
    doc = sample_run()
    client.post("/api/runs", json=doc)
    for url, name, kind in ((f"/api/runs/{doc['run_id']}/heuristics.rs", "wgpu_heuristics.rs", "text/x-rust"),
                            ("/api/heuristics.rs", "wgpu_heuristics.rs", "text/x-rust"),
                            ("/api/heuristics.rs?run=latest", "wgpu_heuristics.rs", "text/x-rust"),
                            (f"/api/runs/{doc['run_id']}/heuristics.rs?flavour=st-core-v1.3", "wgpu_heuristics.rs",
                             "text/x-rust"),
                            (f"/api/runs/{doc['run_id']}/heuristics.rs?flavour=st-core",
                             "wgpu_heuristics_generated.rs", "text/x-rust"),
                            ("/api/heuristics.rs?run=all&flavour=wasm-table", "tuner_results.json", "application/json"),
                            (f"/api/runs/{doc['run_id']}/heuristics.rs?flavour=rules", "spiraltorch_tuner_rules.json",
                             "application/json")):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-disposition"] == f'attachment; filename="{name}"', url
        assert r.headers["content-type"].startswith(kind), url
    assert "Stub" in client.get("/api/heuristics.rs").text
    assert client.get("/api/heuristics.rs?flavour=wasm-table").json() == []
    assert doc["run_id"] in client.get("/api/heuristics.rs?run=latest").text
    r = client.get(f"/api/runs/{doc['run_id']}/heuristics.rs?flavour=cobol")
    detail = r.json()["detail"]
    assert r.status_code == 422 and all(f in detail for f in ("st-core-v1.3", "wasm-table", "rules")), detail


def test_report_compares_picks_with_default_and_stcore(client, sample_run):
    doc = sample_run()
    client.post("/api/runs", json=doc)
    rep = client.get(f"/api/runs/{doc['run_id']}/report").json()
    shapes = {s["shape"]: s for s in rep["shapes"]}
    assert shapes["4x1024 k=8"]["best_ms"] == 0.5 and shapes["4x1024 k=8"]["pick_regret"] == 1.0
    assert shapes["4x4096 k=64"]["best_ms"] == 1.5  # the failed 1.0 ms configuration does not count
    assert set(rep["regret"]) == {"tuned_measured", "tuned_heldout", "fixed_default", "stcore_fallback"}


def test_token_guards_writes_and_native_but_not_reads(make_app, tmp_path, sample_run):
    with TestClient(make_app(tmp_path, token="s3cret")) as c:
        doc = sample_run()
        assert c.post("/api/runs", json=doc).status_code == 401
        assert c.post("/api/runs", json=doc, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/api/runs", json=doc, headers={"Authorization": "Bearer s3cret"}).status_code == 201
        assert c.post("/api/native/topk", json={"k": 1, "seed": 1, "shape": [1, 4]}).status_code == 401
        assert c.get("/").status_code == 200 and c.get("/api/runs").status_code == 200


def test_serve_refuses_a_public_address_without_token(capsys):
    from spiraltorch_tuner.server.cli import main
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "token" in capsys.readouterr().err


def test_a_streamed_body_over_the_limit_is_413(client):
    def chunks():
        for _ in range(48):
            yield b" " * 65536                       # 3 MiB without a Content-Length (chunked)
    r = client.post("/api/runs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(2 << 20) in r.json()["detail"]


@pytest.mark.parametrize("raw,field", [
    ('"limits": {"maxBufferSize": NaN}', "limits"),
    ('"space": {"repeats": Infinity}', "space"),
    ('"space": {"nested": [1, {"x": -Infinity}]}', "space.nested"),
])
def test_non_finite_numbers_are_422_not_stored(client, sample_run, raw, field):
    doc = sample_run()
    doc.pop(raw.split('"')[1])
    body = json.dumps(doc)[:-1] + ", " + raw + "}"
    r = client.post("/api/runs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and field in r.json()["detail"]
    assert client.get(f"/api/runs/{doc['run_id']}").status_code == 404


def test_where_shapes_too_large_for_u64_are_422(client, sample_run):
    doc = sample_run()
    doc["measurements"][-1]["shape"] = [1 << 31] * 6
    r = client.post("/api/runs", json=doc)
    assert r.status_code == 422 and "2**53" in r.json()["detail"]


def test_a_body_that_is_not_a_json_object_is_rejected_with_a_hint(client):
    r = client.post("/api/runs", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON object" in r.json()["detail"]
    r = client.post("/api/runs", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["detail"]
    r = client.post("/api/runs", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


def test_unknown_api_paths_are_json_404(client):
    r = client.get("/api/nothing/here")
    assert r.status_code == 404 and r.json()["detail"] == "no such path: /api/nothing/here"
    assert r.headers["x-frame-options"] == "DENY"


def test_unexpected_errors_are_json_500_without_traceback(make_app, tmp_path, monkeypatch):
    app = make_app(tmp_path)

    def boom(*a):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(app.state.store, "list_runs", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/runs")
    assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
    assert r.json()["detail"] and r.headers["content-security-policy"].startswith("default-src 'self'")


def test_text_round_trips_exactly_whatever_it_holds(client, sample_run):
    text = "naïve ☃ \u2028 \x00 \x7f \U0001F600 \"quoted\" \\ <b>"
    doc = sample_run(label=text, user_agent=text)
    assert client.post("/api/runs", json=doc).status_code == 201
    got = client.get(f"/api/runs/{doc['run_id']}").json()
    assert got["run"]["label"] == text and got["run"]["user_agent"] == text
    assert client.get("/api/runs").json()[0]["label"] == text


def test_zero_times_do_not_break_the_report_or_the_rust(client, sample_run):
    doc = sample_run()
    doc["measurements"][0].update(median_ms=0.0, min_ms=0.0, samples_ms=[0.0])
    assert client.post("/api/runs", json=doc).status_code == 201
    rep = client.get(f"/api/runs/{doc['run_id']}/report")
    assert rep.status_code == 200
    shape = {s["shape"]: s for s in rep.json()["shapes"]}["4x1024 k=8"]
    assert shape["pick"] == shape["best"] == {"use_2ce": False, "wg": 128, "kl": 4, "ch": 0, "sg": False, "ls": True,
                                                 **OFF}
    assert client.get(f"/api/runs/{doc['run_id']}/heuristics.rs").status_code == 200


def test_a_configuration_illegal_as_posted_does_not_break_the_report_or_the_merged_rust(client, sample_run):
    """A 1CE configuration with a chunk size (the page never measures one; a posted run may hold it) is legal as
    measured on no shape: the rule leaves it out instead of dividing by its count of legal shapes."""
    doc = sample_run()
    odd = json.loads(json.dumps(doc["measurements"][0]))
    odd["params"]["ch"] = 1024
    doc["measurements"].append(odd)
    assert client.post("/api/runs", json=doc).status_code == 201
    assert client.get(f"/api/runs/{doc['run_id']}/report").status_code == 200
    assert client.get("/api/heuristics.rs?run=all").status_code == 200


def test_static_types_carry_charset(client):
    assert client.get("/static/app.js").headers["content-type"] == "text/javascript; charset=utf-8"
    assert client.get("/shaders/topk.wgsl").headers["content-type"] == "text/plain; charset=utf-8"
    assert client.get("/shaders/space.json").json()["topk"]["default"] == client.get("/api/space").json()["topk"][
        "default"]


def test_live_server_speaks_http(live_server, sample_run):
    import httpx
    assert isinstance(live_server, str) and live_server.url == live_server and live_server.db_path
    doc = sample_run()
    r = httpx.post(f"{live_server}/api/runs", json=doc, timeout=30)
    assert r.status_code == 201 and r.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{live_server}{r.json()['url']}", timeout=30).json()["run"] == doc
    assert httpx.get(f"{live_server}/static/..%2fpyproject.toml", timeout=30).status_code == 404


def test_cli_writes_heuristics_lists_runs_and_reports(tmp_path, sample_run, capsys):
    from spiraltorch_tuner.server.cli import main
    from spiraltorch_tuner.server.store import Store
    db = str(tmp_path / "cli.sqlite3")
    doc = sample_run(label="from the cli")
    Store(db).put_run(doc)
    out = tmp_path / "h.rs"
    assert main(["heuristics", "--db", db, "--run", "latest", "--flavour", "st-core-v1.3", "-o", str(out)]) == 0
    assert "pub mod generated" in out.read_text() and doc["run_id"] in out.read_text()
    assert "regret" in capsys.readouterr().err
    assert main(["heuristics", "--db", db, "-o", str(out)]) == 0 and "Stub" in out.read_text()
    assert main(["runs", "--db", db]) == 0 and "from the cli" in capsys.readouterr().out
    assert main(["report", "--db", db, "--run", doc["run_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == doc["run_id"]
    assert main(["report", "--db", db, "--run", "nope-nope-nope"]) == 1


def test_token_guards_compare_and_lets_cors_preflights_through(make_app, tmp_path, sample_run):
    app = make_app(tmp_path, token="s3cret", cors_origins=["http://localhost:5173"])
    with TestClient(app) as c:
        doc = sample_run()
        auth = {"Authorization": "Bearer s3cret"}
        assert c.post("/api/runs", json=doc, headers=auth).status_code == 201
        r = c.post(f"/api/runs/{doc['run_id']}/compare?backend=cpu")
        assert r.status_code == 401 and "Bearer" in r.json()["detail"]
        pre = c.options("/api/native/topk", headers={"Origin": "http://localhost:5173",
                                                     "Access-Control-Request-Method": "POST",
                                                     "Access-Control-Request-Headers": "authorization"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "http://localhost:5173"
    with TestClient(make_app(tmp_path)) as c:                  # no cors_origins: no CORS headers at all
        r = c.get("/api/runs", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_report_holds_out_each_shape_when_judging_the_rule(sample_run):
    from spiraltorch_tuner.server.report import format_report, report
    rep = report(sample_run())
    s = {r["shape"]: r for r in rep["shapes"]}["4x1024 k=8"]
    assert s["pick"] == {"use_2ce": False, "wg": 64, "kl": 4, "ch": 0, "sg": True, "ls": True, **OFF}
    assert s["pick_regret"] == 1.0
    # without its own data, 4x1024 k=8 takes 4x4096 k=64's 2CE winner, which is illegal at cols 1024 -> 1CE, 0.9 ms
    assert s["heldout_pick"] == {"use_2ce": False, "wg": 128, "kl": 4, "ch": 0, "sg": False, "ls": True, **OFF}
    assert s["heldout_regret"] == pytest.approx(0.9 / 0.5)
    assert s["stcore"] == {"use_2ce": False, "wg": 256, "kl": 8, "ch": 0, "sg": True, "ls": True, **OFF}
    assert s["stcore_ms"] is None
    assert rep["regret"]["tuned_measured"] == {"geomean": 1.0, "worst": 1.0, "n": 3}
    assert rep["regret"]["tuned_heldout"]["worst"] >= 1.8 - 1e-9
    assert "regret tuned_heldout" in format_report(rep)


def test_judge_fits_the_rule_on_other_runs_and_says_what_is_wrong(client, sample_run):
    """GET /api/runs/{id}/judge: the rule of the other runs of the class judged on this run's shapes; a rule that
    names the judged run, an unknown run, or runs with nothing both can judge are 4xx with a reason; a where_nd-only
    side is judged on where_nd alone."""
    a, b = sample_run(label="fit"), sample_run(label="judged")
    where_only = sample_run(measurements=[m for m in b["measurements"] if m["kernel"] == "where_nd"])
    for d in (a, b, where_only):
        assert client.post("/api/runs", json=d).status_code == 201
    r = client.get(f"/api/runs/{b['run_id']}/judge")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["run_id"] == b["run_id"] and j["fit_runs"] == [a["run_id"], where_only["run_id"]]   # the class, merged
    assert j["regret"] == {"geomean": 1.0, "worst": 1.0, "n": 3}             # same times: the picks are the best
    assert [s["shape"] for s in j["shapes"]] == ["2x16384 k=256", "4x1024 k=8", "4x4096 k=64"]
    w = j["where_nd"]                                    # both sides have where_nd: its rule judged per case too
    assert w["regret"]["n"] == len(w["cases"]) > 0 and w["regret"]["worst"] == 1.0, w
    one = client.get(f"/api/runs/{b['run_id']}/judge", params={"rule": a["run_id"]}).json()
    assert one["fit_runs"] == [a["run_id"]] and one["shapes"] == j["shapes"]
    same = client.get(f"/api/runs/{b['run_id']}/judge", params={"rule": b["run_id"]})
    assert same.status_code == 422 and "itself" in same.json()["detail"]
    assert client.get(f"/api/runs/{b['run_id']}/judge", params={"rule": "nope"}).status_code == 404
    # a where_nd-only run is judged on where_nd alone, and the TopK part says why it is empty
    wj = client.get(f"/api/runs/{where_only['run_id']}/judge")
    assert wj.status_code == 200, wj.text
    wj = wj.json()
    assert wj["shapes"] == [] and wj["regret"]["n"] == 0 and "no correct TopK measurement to judge" in wj["topk_missing"]
    assert wj["where_nd"]["regret"]["n"] == len(wj["where_nd"]["cases"]) > 0
    assert j["topk_missing"] is None
    unfit = client.get(f"/api/runs/{b['run_id']}/judge", params={"rule": where_only["run_id"]}).json()
    assert "to fit the rule on" in unfit["topk_missing"] and unfit["shapes"] == [] and unfit["where_nd"]["cases"]
    topk_only = sample_run(measurements=[m for m in a["measurements"] if m["kernel"] == "topk"])
    assert client.post("/api/runs", json=topk_only).status_code == 201
    none = client.get(f"/api/runs/{where_only['run_id']}/judge", params={"rule": topk_only["run_id"]})
    assert none.status_code == 422
    assert "no correct TopK measurement to judge" in none.json()["detail"] and "where_nd" in none.json()["detail"]
