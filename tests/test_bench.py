"""`manage.py bench` runs end to end in its tiny mode and writes well-formed JSON.

Nothing here judges speed: the targets live in the benchmark's own output.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from reviewdesk import bench
from reviewdesk.management.commands.bench import table

KEYS = {"figure", "value", "unit", "reference", "reference_name", "target", "pass"}


def test_bench_runs_in_tiny_mode_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "REVIEWDESK_BENCH_DIR": str(tmp_path / "bench"),
        "DJANGO_SETTINGS_MODULE": "reviewdesk.settings",
    }
    argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "bench", "--tiny"]
    argv += ["--no-postgres", "--only", "cycle,sql,peer", "--json", str(out)]
    done = subprocess.run(
        argv, env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    rows = results["backends"]["sqlite"]["rows"]
    assert {r["module"] for r in rows} == {"cycle", "sql", "peer"}
    for r in rows:
        assert r.keys() >= KEYS, r
        assert r["value"] is None or math.isfinite(r["value"]), r
        assert r["pass"] in (True, False, None), r
    measured = [r for r in rows if r["module"] != "peer"]
    assert all(r["value"] is not None for r in measured), measured
    assert any(r["target"] and r["pass"] is not None for r in measured)
    # The table printed is the JSON's.
    assert "| figure | value | reference | ratio | target | pass |" in done.stdout
    assert rows[0]["figure"] in done.stdout


def test_rows_and_the_table() -> None:
    assert bench.percentile([1, 2, 3, 4], 50) == 2.5
    assert math.isnan(bench.percentile([], 95))
    results = {
        "mode": "quick",
        "machine": {"cpus": 2, "load_average": [1.0, 1.0, 1.0]},
        "backends": {
            "sqlite": {
                "rows": [
                    bench.row(
                        "p95",
                        30,
                        "ms",
                        reference=10,
                        reference_name="bare",
                        target="≤ 3× reference",
                        passed=True,
                    ),  # fmt: skip
                    bench.missing("peer", "", "not installed"),
                ]
            }
        },
    }
    text = table(results)
    assert "| p95 | 30 ms | 10 ms (bare) | 3.00× | ≤ 3× reference | pass |" in text
    assert "peer — not installed" in text
    assert all(bench.well_formed(r) for r in results["backends"]["sqlite"]["rows"])


def test_a_peer_that_cannot_be_installed_is_a_row_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewdesk.bench import peer

    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as if the registry were unreachable
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    venv, why = peer._venv(tmp_path, build=True)
    assert venv is None
    assert "install failed" in why
    assert peer._venv(tmp_path, build=False)[0] is None  # and it does not count as built
