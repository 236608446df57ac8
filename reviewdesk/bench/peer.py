"""The peer: the same cycle through LangGraph's own local server, `langgraph dev`.

`langgraph dev` (the in-memory server of ``langgraph-cli[inmem]``) runs the same bench graph,
driven by ``langgraph-sdk`` the way the desk's reviewers drive the desk: one client cycling
alone, then 8 concurrent clients. Installed for the benchmark only, in a virtualenv of its own
(``var/bench/peer-venv``, pinned by ``requirements-peer.txt``): it pins its own LangGraph and is
never a dependency of the desk. Stock settings: its in-memory run queue sleeps a hard-coded
0.5 s when idle and ignores runs created during that sleep, so a lone client waits 0.5-1 s per
run whatever the graph does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from reviewdesk import bench
from reviewdesk.bench.desk import current, free_port, say
from reviewdesk.devrun import Proc, ProcError

ORDER = 60
BACKENDS = ("sqlite",)  # the peer keeps its own in-memory store; once per run is enough
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-peer.txt"
CLIENTS = 8
POLL_NOTE = "its ≈ 0.5–1 s per run is a hard-coded 0.5 s idle poll in its in-memory run queue"


def _venv(base: Path, build: bool) -> tuple[Path | None, str]:
    """The peer's virtualenv (built when missing and `build`), or None and why not."""
    venv = base / "peer-venv"
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == REQUIREMENTS.read_text():
        return venv, ""
    if not build:
        return None, "its virtualenv is not built yet (a full `make bench` builds it)"
    say(f"building the peer's virtualenv {venv} (langgraph-cli[inmem], pinned); once only")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        done = subprocess.run(
            [*pip, "-r", str(REQUIREMENTS)], capture_output=True, text=True, timeout=900
        )
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"its install failed: {error}"
    if done.returncode:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        return None, f"its install failed (pip exit {done.returncode}): {tail[:300]}"
    stamp.write_text(REQUIREMENTS.read_text())
    return venv, ""


def _serve(venv: Path, work: Path) -> Proc:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "langgraph.json"
    config.write_text(
        json.dumps({"dependencies": ["."], "graphs": {"bench": f"{HERE / 'graph.py'}:graph"}})
    )
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", str(work)),
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [
        str(venv / "bin" / "langgraph"), "dev", "--port", str(port), "--no-browser",
        "--no-reload", "--config", str(config),
    ]  # fmt: skip
    proc = Proc.start("langgraph dev", argv, env=env, log_path=work / "dev.log", cwd=work)
    proc.url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{proc.url}/ok", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        proc.wait_until(ready, timeout=120, what="answering /ok", interval=0.25)
    except ProcError:
        proc.stop()
        raise
    return proc


def measure(*, quick: bool) -> list[dict[str, Any]]:
    desk = current()
    cycles, seconds = (3, 2.0) if bench.TINY else (3, 4.0) if quick else (20, 10.0)
    base = desk.var.parent
    venv, why = _venv(base, build=not quick)
    if venv is None:
        return [bench.missing("langgraph dev (peer)", "", why)]
    say(f"peer: langgraph dev, {cycles} cycles alone, then {CLIENTS} clients × {seconds:g} s")
    try:
        server = _serve(venv, base / "peer")
    except ProcError as error:
        return [bench.missing("langgraph dev (peer)", "", f"did not start: {str(error)[:300]}")]
    try:
        driver = [
            str(venv / "bin" / "python"), str(HERE / "_peer_driver.py"), server.url or "",
            "--cycles", str(cycles), "--clients", str(CLIENTS), "--seconds", str(seconds),
        ]  # fmt: skip
        done = subprocess.run(driver, capture_output=True, text=True, timeout=600)
    finally:
        server.stop()
    if done.returncode:
        tail = " ".join(done.stderr.strip().splitlines()[-2:])[:300]
        return [bench.missing("langgraph dev (peer)", "", f"the SDK driver failed: {tail}")]
    got = json.loads(done.stdout)
    p = bench.percentile
    ms = bench.ms
    peer_cps = got["concurrent_cycles"] / got["concurrent_seconds"]
    desk_cps = desk.facts.get("desk_cps")
    f = desk.facts
    return [
        bench.row(
            "langgraph dev (stock), one SDK client: resume → next interrupt, p50",
            ms(p(got["latencies"], 50)), "ms",
            reference=ms(f["submit_p50"]) if "submit_p50" in f else None,
            reference_name="reviewdesk submit → next item visible, p50", note=POLL_NOTE,
        ),
        bench.row(
            f"reviewdesk, {CLIENTS} concurrent clients", desk_cps, "cycles/s",
            reference=peer_cps, reference_name=f"langgraph dev (stock), {CLIENTS} SDK clients",
            target="≥ 2× reference",
            passed=None if desk_cps is None else desk_cps >= 2 * peer_cps,
        ),
        bench.row(
            f"reviewdesk, {CLIENTS} concurrent clients: cycle p95",
            ms(f["loaded_p95"]) if "loaded_p95" in f else None, "ms",
            reference=ms(p(got["concurrent_latencies"], 95)),
            reference_name=f"langgraph dev (stock), {CLIENTS} SDK clients, p95",
        ),
    ]  # fmt: skip
