"""Everything a user can name is documented (datasette's tests/test_docs.py is the model): every CLI subcommand and
option, every REST route of the OpenAPI schema and its query parameters, every SPIRALTORCH_* setting the source
reads, every search-space parameter of shaders/space.json and every public Python name appears in README.md or
docs/*.md. Each test names what is missing. Also: README stays short, links every docs page, and its links resolve."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

import spiraltorch_tuner as st
from spiraltorch_tuner.server.app import create_app
from spiraltorch_tuner.server.cli import build_parser
from spiraltorch_tuner.server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 12_000          # UTF-8 bytes, as the before-stop check counts them (µ, ×, — take two or three)
# Where settings are read: the code, the two commands and the tests' own switches.
SOURCES = ["native", "server", "static", ".ci", "bench", "tests"]


@pytest.fixture(scope="module")
def docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in [README, *PAGES])


def sections(text: str) -> list[str]:
    """Markdown split at its headings."""
    return re.split(r"(?m)^#{1,6} ", text)


def has_token(text: str, token: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text) is not None


def test_every_cli_subcommand_and_option_is_documented(docs):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, sp in sub.choices.items():
        if f"spiraltorch-tuner {name}" not in docs:
            missing.append(f"spiraltorch-tuner {name}")
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for opt in action.option_strings or [action.metavar or action.dest]:
                if not has_token(docs, opt):
                    missing.append(f"spiraltorch-tuner {name} {opt}")
    assert not missing, f"undocumented in README.md and docs/*.md: {missing}"


def _norm(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_rest_route_and_query_parameter_is_documented(docs, tmp_path):
    schema = create_app(Settings(db_path=str(tmp_path / "docs.sqlite3"))).openapi()
    text = sections(_norm(docs))
    missing = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            route = re.compile(rf"{method.upper()} {re.escape(_norm(path))}(?![\w/{{}}.-])")
            where = [s for s in text if route.search(s)]
            if not where:
                missing.append(f"{method.upper()} {path}")
                continue
            for p in op.get("parameters", []):
                if p["in"] == "query" and not any(re.search(rf"[`?&]{p['name']}\b|\b{p['name']}=", s) for s in where):
                    missing.append(f"{method.upper()} {path} ?{p['name']} (in the section that names the route)")
    assert not missing, f"undocumented in README.md and docs/*.md: {missing}"


def settings_in_source() -> set[str]:
    found = set()
    for folder in SOURCES:
        for f in (ROOT / folder).rglob("*"):
            if f.is_file() and f.suffix in ("", ".py", ".js", ".sh") and "__pycache__" not in f.parts:
                found |= set(re.findall(r"SPIRALTORCH_[A-Z0-9_]+", f.read_text(encoding="utf-8", errors="replace")))
    return found


def test_every_setting_is_documented(docs):
    found = settings_in_source()
    assert {"SPIRALTORCH_TOKEN", "SPIRALTORCH_DATABASE_URL", "SPIRALTORCH_CHROMIUM"} <= found   # the scan works
    missing = sorted(s for s in found if not has_token(docs, s))
    assert not missing, f"settings read by the source but undocumented: {missing}"


def test_every_search_space_parameter_is_documented(docs):
    space = json.loads((ROOT / "shaders" / "space.json").read_text(encoding="utf-8"))
    names = {f"{kernel} {p}": p for kernel in ("topk", "where_nd") for p in space[kernel]["params"]}
    names |= {f"where_nd case {c}": c for c in space["where_nd"]["cases"]}
    names |= {f"TopK derived override {o}": o for o in space["topk"].get("overrides_derived", {})}
    for preset, spec in space["presets"].items():
        names[f"preset {preset}"] = preset
        names |= {f"preset setting {k}": k for k, v in spec.items() if not isinstance(v, (dict, str))}
    missing = sorted(what for what, name in names.items() if not re.search(rf"[`*]{re.escape(name)}[`*]", docs))
    assert not missing, f"search-space names not in README.md or docs/*.md (as `name` or **name**): {missing}"


def test_every_public_python_name_is_documented(docs):
    missing = [n for n in st.__all__ if not re.search(rf"(?:`|\bst\.|spiraltorch_tuner\.){re.escape(n)}\b", docs)]
    assert not missing, f"spiraltorch_tuner.__all__ names undocumented (as `name` or st.name): {missing}"


def test_readme_is_short_and_links_every_docs_page():
    text = README.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; at most {README_MAX_BYTES}"
    unlinked = [p.name for p in PAGES if f"](docs/{p.name}" not in text]
    assert PAGES and not unlinked, f"docs pages README.md does not link: {unlinked}"


def test_readme_gives_the_ci_command_line():
    """CI (.ci/run) runs exactly the test command README gives."""
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    line = next(ln for ln in run if ln.startswith("bash .ci/dev test"))
    assert line in README.read_text(encoding="utf-8").splitlines()


def anchors(page: Path) -> set[str]:
    """The #anchors of a page's headings, as GitHub makes them."""
    heads = re.findall(r"(?m)^#{1,6} (.*)$", page.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = page.parent / path if path else page
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
            broken.append(target)
    assert not broken, f"{page.name} links to missing files or headings: {broken}"
