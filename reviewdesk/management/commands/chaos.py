"""`manage.py chaos [--short]`: prove the desk's guarantees by killing things; figures out.

Builds a private desk (its own database, Redis, Daphne, Celery workers and beat), runs threads
of the example graphs plus a slow and a ledger graph, answers them over HTTP as scripted
reviewers (double-clicks and races included), injects faults at seeded random moments (SIGKILL
of a pool process, of a whole worker, of Redis; duplicate deliveries), then checks guarantees
1–4 and prints one table (and --json). Exit status: 0 all damage counts 0, 1 damage, 2 the run
itself was invalid (a harness error, or fewer faults injected than asked).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

PRESETS = {
    # About two to three minutes: what CI runs.
    "short": {"threads": 20, "faults": 10, "duration": 45.0, "settle": 90.0, "reviewers": 4},
    # At least 200 faults.
    "long": {"threads": 120, "faults": 60, "duration": 480.0, "settle": 180.0, "reviewers": 6},
}


class Command(BaseCommand):
    help = "Fault injection against a private desk: prove guarantees 1-4 with figures."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--short", action="store_true", help="the CI size (2-3 minutes)")
        parser.add_argument("--threads", type=int, help="threads to run (long: 120)")
        parser.add_argument("--faults", type=int, help="faults of each of 4 kinds (long: 60)")
        parser.add_argument("--duration", type=float, help="seconds of fault injection")
        parser.add_argument("--settle", type=float, help="seconds allowed to finish after it")
        parser.add_argument("--reviewers", type=int, help="scripted reviewers (HTTP sessions)")
        parser.add_argument("--seed", type=int, default=None, help="random seed (printed)")
        parser.add_argument("--json", dest="json_path", help="also write the report here")
        parser.add_argument("--stale-after", type=float, default=1.5)
        parser.add_argument("--reconcile-interval", type=float, default=1.5)
        parser.add_argument("--slow-seconds", type=float, default=1.5)
        parser.add_argument(
            "--recovery-bound", type=float, default=60.0, help="seconds (guarantee 4)"
        )
        parser.add_argument("--run-id", default="", help="names the run (and its processes)")
        parser.add_argument("--inner", action="store_true", help=argparse_suppress())

    def handle(self, *args: Any, **options: Any) -> None:
        preset = PRESETS["short" if options["short"] else "long"]
        for key, value in preset.items():
            if options[key] is None:
                options[key] = value
        if options["seed"] is None:
            options["seed"] = int(time.time()) % 100_000
        if options["inner"]:
            sys.exit(self.inner(options))
        from reviewdesk.chaos import run

        run_id = options["run_id"] or f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        argv = [
            f"--threads={options['threads']}",
            f"--faults={options['faults']}",
            f"--duration={options['duration']}",
            f"--settle={options['settle']}",
            f"--reviewers={options['reviewers']}",
            f"--seed={options['seed']}",
            f"--stale-after={options['stale_after']}",
            f"--reconcile-interval={options['reconcile_interval']}",
            f"--slow-seconds={options['slow_seconds']}",
            f"--recovery-bound={options['recovery_bound']}",
            f"--run-id={run_id}",
            *(["--short"] if options["short"] else []),
        ]
        if options["json_path"]:
            argv.append(f"--json={Path(options['json_path']).resolve()}")
        sys.exit(
            run.run(
                argv,
                settings_dict=dict(connections["default"].settings_dict),
                var_dir=Path(settings.VAR_DIR),
                run_id=run_id,
            )
        )

    def inner(self, options: dict[str, Any]) -> int:
        """The run itself, in the process whose settings name only the chaos database."""
        from reviewdesk.chaos import harness, verdict

        def terminate(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, terminate)
        os.environ["REVIEWDESK_STALE_AFTER"] = str(options["stale_after"])
        os.environ["REVIEWDESK_RECONCILE_INTERVAL"] = str(options["reconcile_interval"])
        os.environ["REVIEWDESK_CHAOS_SLOW_SECONDS"] = str(options["slow_seconds"])
        # Route slow threads to the prefork worker: here (this process enqueues too) and in
        # every process the desk starts.
        os.environ["REVIEWDESK_WORKER_QUEUES"] = json.dumps(harness.ROUTES)
        settings.REVIEWDESK_WORKER_QUEUES = dict(harness.ROUTES)
        plan = harness.Plan(
            threads=options["threads"],
            faults=options["faults"],
            duration=options["duration"],
            settle=options["settle"],
            seed=options["seed"],
            reviewers=options["reviewers"],
            run_dir=Path(settings.VAR_DIR),
            worker_pool=os.environ.get("REVIEWDESK_WORKER_POOL") or "threads",
            worker_concurrency=int(os.environ.get("REVIEWDESK_WORKER_CONCURRENCY") or 8),
            stale_after=options["stale_after"],
            reconcile_interval=options["reconcile_interval"],
            slow_seconds=options["slow_seconds"],
            recovery_bound=options["recovery_bound"],
        )
        try:
            with harness.running(plan) as chaos:
                report = chaos.run()
        except KeyboardInterrupt:
            harness.say("interrupted: processes stopped, no verdict")
            return 130
        text = json.dumps(report, indent=2, default=str)
        (plan.run_dir / "report.json").write_text(text)
        if options["json_path"]:
            Path(options["json_path"]).write_text(text)
        self.stdout.write(verdict.table(report))
        for line in report["unexpected_exits"]:
            self.stdout.write(f"note: unexpected exit: {line.splitlines()[0]}")
        short_of = [k for k in harness.KINDS if report["faults"][k] < plan.faults]
        if report["harness_errors"] or short_of:
            for error in report["harness_errors"]:
                self.stderr.write(f"harness error: {error}")
            if short_of:
                self.stderr.write(f"fewer faults injected than asked: {', '.join(short_of)}")
            return 2
        damaged = {k: v for k, v in report["damage"].items() if v}
        if damaged:
            self.stdout.write(f"chaos: FAILED, damage: {damaged} (details in the JSON report)")
            return 1
        self.stdout.write("chaos: passed, every damage count is 0")
        return 0


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS
