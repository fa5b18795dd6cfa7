"""Fuzz every operation of the API from its own OpenAPI schema (schemathesis + hypothesis): no input gives a 5xx.
Bounded: a fixed number of examples per operation, on a real app with a temporary SQLite file."""
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from spiraltorch_tuner.server.app import create_app  # noqa: E402
from spiraltorch_tuner.server.settings import Settings  # noqa: E402

APP = create_app(Settings(db_path=str(Path(tempfile.mkdtemp()) / "fuzz.sqlite3"), max_elements=1 << 16,
                          native_timeout_s=20))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
SEEN = {"cases": 0, "by_status": {}}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_gives_a_server_error(case):
    response = case.call()
    SEEN["cases"] += 1
    SEEN["by_status"][response.status_code] = SEEN["by_status"].get(response.status_code, 0) + 1
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
