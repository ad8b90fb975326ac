"""`make bench` runs end to end (a small, fast configuration of the real harness).

The figures themselves are not asserted — speed is for `make bench` to show on a quiet
machine — but every section must produce its measurements and baselines.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the benchmark end to end

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the benchmark needs PostgreSQL: runs in the PostgreSQL pass of .ci/run",
)
def test_bench_runs_end_to_end(tmp_path):
    """A tiny bench run writes results with service figures and same-run baselines."""
    assert shutil.which("wrk"), "wrk is missing: apt-get install -y wrk (.ci/run installs it)"
    out = tmp_path / "bench"
    argv = [
        sys.executable,
        "-m",
        "bench",
        "--sections",
        "kiosk,batch,ranking",
        "--rounds",
        "1",
        "--duration",
        "2",
        "--batches",
        "2",
        "--singles",
        "5",
        "--sizes",
        "3000",
        "--out",
        str(out),
    ]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["sections"]) >= {"kiosk", "batch", "ranking"}
    markdown = (out / "results.md").read_text()
    assert "bare Flask" in markdown and "bare GROUP BY" in markdown
    assert "kiosk answers other than 201" in markdown
