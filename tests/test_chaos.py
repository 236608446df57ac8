"""`manage.py chaos --short`: guarantees 1-4 under injected faults, with every damage count 0.

Runs the command as a user would (a subprocess with its own database, Redis and workers), so a
failure here prints the same table `make chaos` prints. Nothing is left running afterwards: the
run's processes carry its id on their command line and are swept by it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from reviewdesk.chaos import harness, run
from reviewdesk.devrun import BASE_DIR

SHORT_FAULTS = 10  # per kind, as the command's --short preset
TIMEOUT = 900


def test_chaos_short_run_does_no_damage(tmp_path: Path) -> None:
    report_path = tmp_path / "chaos.json"
    run_id = f"pytest-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "manage.py", "chaos", "--short", f"--run-id={run_id}"]
    argv.append(f"--json={report_path}")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # never the tests' Redis
    proc = subprocess.Popen(
        argv, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the command stops its desk and drops its database
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        raise AssertionError(f"chaos --short ran over {TIMEOUT} s:\n{output[-5000:]}") from None
    finally:
        run.sweep(run_id)
    print(output)
    assert report_path.exists(), f"no report (exit {proc.returncode}):\n{output[-5000:]}"
    report = json.loads(report_path.read_text())
    assert not report["harness_errors"], report["harness_errors"]
    for kind in harness.KINDS:
        assert report["faults"][kind] >= SHORT_FAULTS, (kind, report["faults"])
    assert report["faults"]["resume_copies"] >= report["load"]["answers_accepted"]
    assert report["load"]["answers_accepted"] > 0
    assert report["load"]["accepted_while_redis_down"] > 0  # answers kept coming meanwhile
    assert report["load"]["double_clicks"] > 0 and report["load"]["two_reviewer_races"] > 0
    damage = {name: n for name, n in report["damage"].items() if n}
    assert not damage, f"{damage}\n{json.dumps(report['details'], indent=1)}"
    assert proc.returncode == 0, output[-5000:]
