"""static/space.js and native/space.py agree on the derived launch quantities the two hosts pass to the shaders."""
import json
import shutil
import subprocess

import pytest

from spiraltorch_tuner.paths import STATIC
from spiraltorch_tuner.space import sort_cap

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def test_sort_cap_matches_between_js_and_python():
    cases = [(kp, wg, lim) for kp in (1, 2, 64, 1024, 2048, 4096) for wg in (64, 256, 1024)
             for lim in ({}, {"maxComputeWorkgroupStorageSize": 16384}, {"maxComputeWorkgroupStorageSize": 32768},
                         {"maxComputeWorkgroupStorageSize": 49152})]
    script = (f"import {{ sortCap }} from {json.dumps((STATIC / 'space.js').as_uri())};\n"
              "const cases = JSON.parse(process.argv[1]);\n"
              "console.log(JSON.stringify(cases.map(([kp, wg, lim]) => sortCap(kp, wg, lim))));")
    out = subprocess.run(["node", "--input-type=module", "-e", script, json.dumps(cases)], capture_output=True,
                         text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == [sort_cap(kp, wg, lim) for kp, wg, lim in cases]
    assert sort_cap(4096, 256, {"maxComputeWorkgroupStorageSize": 49152}) == 4096
    assert sort_cap(4096, 256, {"maxComputeWorkgroupStorageSize": 32768}) == 1
