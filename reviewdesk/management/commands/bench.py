"""`python manage.py bench`: every speed figure beside its reference, as a table and as JSON.

It never touches the user's data or Redis. This process only orchestrates: it starts a private
Redis under ``var/bench/``, then for each database runs a child ``manage.py bench --child``
whose environment points Django at a scratch database (a SQLite file under ``var/bench/sqlite/``;
on PostgreSQL a database of its own, dropped afterwards) and that Redis. The child starts the
desk's processes as `make run` does and runs every measurement module of `reviewdesk.bench`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewdesk import bench
from reviewdesk.devrun import BASE_DIR, DevrunError, ProcError, start_redis

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/"
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class Command(BaseCommand):
    help = "Measure the desk's speed against bare LangGraph and LangGraph's own server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quick", action="store_true", help="fewer samples (< 3 minutes)")
        parser.add_argument("--json", metavar="PATH", help="also write the figures here")
        parser.add_argument(
            "--postgres",
            metavar="URL",
            help=f"PostgreSQL server for the scratch database (default: {DEFAULT_POSTGRES}; "
            "--quick runs on SQLite only unless this is given)",
        )
        parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
        parser.add_argument(
            "--only", metavar="NAMES", default="", help="measurement modules, comma-separated"
        )
        parser.add_argument(
            "--profile", action="store_true", help="record py-spy profiles into var/bench/profile"
        )
        # Internal: the test suite's tiny mode, and the per-database child.
        parser.add_argument("--tiny", action="store_true", help="==SUPPRESS==")
        parser.add_argument("--child", choices=bench.BACKENDS, help="==SUPPRESS==")
        parser.add_argument("--out", help="==SUPPRESS==")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["child"]:
            self._child(options)
            return
        started = time.monotonic()
        base = Path(os.environ.get("REVIEWDESK_BENCH_DIR", BASE_DIR / "var" / "bench"))
        base.mkdir(parents=True, exist_ok=True)
        quick, tiny = options["quick"], options["tiny"]
        results: dict[str, Any] = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "tiny" if tiny else "quick" if quick else "full",
            "machine": {
                "cpus": os.cpu_count(),
                "load_average": list(os.getloadavg()),
                "python": platform.python_version(),
            },
            "backends": {},
        }
        try:
            redis = start_redis(base / "redis.sock", log_path=base / "redis.log")
        except (DevrunError, ProcError) as error:
            raise CommandError(f"cannot start the bench's private Redis: {error}") from error
        try:
            skip_postgres = options["no_postgres"] or (quick and not options["postgres"])
            backends = ["sqlite"] if skip_postgres else list(bench.BACKENDS)
            options["postgres"] = options["postgres"] or DEFAULT_POSTGRES
            for backend in backends:
                _flush(redis.url or "")
                results["backends"][backend] = self._backend(backend, base, redis.url, options)
        finally:
            redis.stop()
        results["seconds"] = round(time.monotonic() - started, 1)
        self.stdout.write("\n" + table(results))
        if options["json"]:
            path = Path(options["json"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2, allow_nan=False, default=str) + "\n")
            self.stdout.write(f"\nwrote {path}")

    def _backend(
        self, backend: str, base: Path, redis_url: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        """Run one database's child; its rows, or a row saying why it could not run."""
        from reviewdesk.bench.desk import scratch_dir

        var = scratch_dir(base, backend)
        out = var / "rows.json"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "reviewdesk.settings",
            "REDIS_URL": redis_url or "",
            "REVIEWDESK_VAR_DIR": str(var),
            "REVIEWDESK_GRAPHS": json.dumps(
                {**settings.REVIEWDESK_GRAPHS, "bench_loop": "reviewdesk.bench.graph:graph"}
            ),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        env.pop("TEST_REDIS_URL", None)
        started = time.monotonic()
        with self._database(backend, var, options["postgres"]) as database:
            if isinstance(database, str) and not database.startswith(("sqlite:", "postgres")):
                return {
                    "rows": [bench.missing(f"{LABELS[backend]} run", "", database)],
                    "seconds": 0,
                }
            env["DATABASE_URL"] = database
            argv = [sys.executable, str(BASE_DIR / "manage.py"), "bench", "--child", backend]
            argv += ["--out", str(out), "--only", options["only"]]
            argv += [flag for flag in ("--quick", "--tiny", "--profile") if options[flag[2:]]]
            returncode = subprocess.run(argv, env=env, cwd=BASE_DIR, check=False).returncode
        rows = json.loads(out.read_text()) if out.exists() else []
        if returncode:
            why = f"the {backend} run exited with {returncode}; see the output above"
            rows.append(bench.missing(f"{LABELS[backend]} run", "", why))
        return {"rows": rows, "seconds": round(time.monotonic() - started, 1)}

    @contextlib.contextmanager
    def _database(self, backend: str, var: Path, server: str) -> Iterator[str]:
        """A scratch database URL (a reason, not a URL, when it cannot be had); dropped after."""
        if backend == "sqlite":
            yield f"sqlite:///{var / 'reviewdesk.sqlite3'}"
            return
        import psycopg

        name = f"reviewdesk_bench_{os.getpid()}"
        split = urlsplit(server)
        admin = urlunsplit((split.scheme, split.netloc, "/postgres", "", ""))
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as error:
            yield f"PostgreSQL at {_redacted(server)} is not usable: {' '.join(str(error).split())}"
            return
        try:
            yield urlunsplit((split.scheme, split.netloc, f"/{name}", "", ""))
        finally:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _child(self, options: dict[str, Any]) -> None:
        """Inside the scratch environment: start the desk, run the measurements, write rows."""
        from reviewdesk.bench import desk as bench_desk

        backend = options["child"]
        if not str(settings.VAR_DIR).startswith(str(BASE_DIR / "var" / "bench")) and not (
            os.environ.get("REVIEWDESK_BENCH_DIR")
        ):
            raise CommandError("--child runs only inside `manage.py bench`'s scratch environment")
        bench.TINY = options["tiny"]
        out = Path(options["out"])
        only = [name for name in options["only"].split(",") if name]
        profile_dir = settings.VAR_DIR.parent / "profile" if options["profile"] else None
        rows: list[dict[str, Any]] = []
        bench_desk.start(backend=backend, quick=options["quick"], profile_dir=profile_dir)
        try:
            for module in bench.measurements(backend, only):
                name = module.__name__.rsplit(".", 1)[-1]
                started = time.monotonic()
                try:
                    got = module.measure(quick=options["quick"] or options["tiny"])
                except Exception as error:  # one measurement failing must not lose the others
                    import traceback

                    traceback.print_exc()
                    got = [bench.missing(f"{name}: could not run", "", f"{error!r}"[:300])]
                for r in got:
                    if not bench.well_formed(r):
                        r = bench.missing(f"{name}: malformed row", "", repr(r)[:300])
                    rows.append({**r, "module": name})
                bench_desk.say(f"{backend}: {name} took {time.monotonic() - started:.0f} s")
                out.write_text(json.dumps(_finite(rows), indent=1, default=str))
        finally:
            bench_desk.stop()


def _finite(value: Any) -> Any:
    """NaN and infinities become None: JSON has no word for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _redacted(url: str) -> str:
    split = urlsplit(url)
    if split.password:
        netloc = split.netloc.replace(f":{split.password}@", ":***@")
        return urlunsplit(split._replace(netloc=netloc))
    return url


def _flush(url: str) -> None:
    """The private Redis holds nothing between databases: a fresh channel layer and broker."""
    import redis

    redis.Redis.from_url(url).flushall()


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = float(value)
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value)}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(results: dict[str, Any]) -> str:
    """The figures as a Markdown table, one section per database."""
    lines = [
        f"reviewdesk bench ({results['mode']}), {results['machine']['cpus']} CPUs, load "
        + " ".join(f"{x:.1f}" for x in results["machine"]["load_average"])
        + f", {results.get('seconds', '?')} s",
    ]
    for backend, data in results["backends"].items():
        lines += [
            "",
            f"### {LABELS.get(backend, backend)} ({data.get('seconds', '?')} s)",
            "",
            "| figure | value | reference | ratio | target | pass |",
            "|---|---|---|---|---|---|",
        ]
        for r in data["rows"]:
            unit = f" {r['unit']}" if r.get("unit") else ""
            value = _number(r["value"]) + (unit if r["value"] is not None else "")
            reference = ""
            if r.get("reference") is not None:
                reference = f"{_number(r['reference'])}{unit}"
            if r.get("reference_name"):
                reference = f"{reference} ({r['reference_name']})".strip()
            ratio = ""
            if r["value"] is not None and r.get("reference"):
                ratio = f"{r['value'] / r['reference']:.2f}×"
            verdict = {True: "pass", False: "**FAIL**", None: ""}[r.get("pass")]
            figure = r["figure"] + (f" — {r['note']}" if r.get("note") else "")
            figure = " ".join(figure.replace("|", "/").split())  # one table cell
            lines.append(
                f"| {figure} | {value} | {reference} | {ratio} | {r.get('target') or ''} "
                f"| {verdict} |"
            )
    return "\n".join(lines)
