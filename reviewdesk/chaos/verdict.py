"""The chaos run's verdict: guarantees 1–4 checked against the database, the checkpointer and
the ledger, once every process has stopped (a consistent snapshot), as a table and as JSON.

Damage counts must all be 0. Everything else is a figure that explains them.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import connection

from reviewdesk.chaos import graphs
from reviewdesk.engine import registry
from reviewdesk.models import ReviewItem, Thread

if TYPE_CHECKING:
    from reviewdesk.chaos.harness import Chaos

DETAILS = 25  # examples kept per finding

DAMAGE = {
    "lost_interrupts": "pending in the checkpointer with no open item",
    "duplicate_items": "extra open items for one interrupt, or open items for none",
    "double_applied": "an answer's effect recorded twice, not explained by a kill",
    "lost_answers": "accepted (2xx, item answered) but never applied",
    "stuck_threads": "every question answered, yet not finished by the deadline",
    "failed_threads": "healthy threads the desk failed",
    "wrong_final_state": "a finished graph whose state does not match the answers",
    "two_winners": "two POSTs for one item both accepted",
    "phantom_acceptances": "a 2xx whose item does not show the answer",
    "never_recovered": "kills/restarts after which owed work never progressed",
    "recoveries_over_bound": "recoveries slower than the bound",
}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def _message_text(message: Any) -> str:
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _state_problem(thread: Thread, values: dict[str, Any], applied: list[ReviewItem]) -> str:
    """Why a completed thread's final state does not match the answers it was given ("" if ok)."""
    answers = [item.answer for item in applied]
    graph = thread.graph
    if graph == "chaos_ledger":
        if values.get("answers") != answers or len(answers) != graphs.LEDGER_STEPS:
            return f"answers {values.get('answers')!r} vs applied {answers!r}"
    elif graph in ("chaos_slow", "chaos_pooled"):
        if not values.get("done") or values.get("answer") != (answers[-1] if answers else None):
            return f"state {values!r} vs applied {answers!r}"
    elif graph == "parallel_approval":
        reviews, published = values.get("reviews", []), values.get("published", [])
        finished = values.get("status") in ("published", "rejected")
        if len(reviews) != 2 or len(published) > 1 or not finished:
            return f"{len(reviews)} reviews, {len(published)} publications"
    elif graph == "age":
        from graphs.age import parse_age

        valid = [a for a in answers if parse_age(a) is not None]
        if not valid or values.get("age") != parse_age(valid[-1]):
            return f"age {values.get('age')!r} vs answers {answers!r}"
    elif graph in ("chatbot", "agent"):
        messages = values.get("messages", [])
        tool_results = [m for m in messages if type(m).__name__ == "ToolMessage"]
        if len(tool_results) != len(applied):
            return f"{len(tool_results)} tool results for {len(applied)} answers"
        if graph == "chatbot" and answers:
            data = answers[-1].get("data") if isinstance(answers[-1], dict) else None
            if not data or data not in _message_text(messages[-1]):
                return f"last message {_message_text(messages[-1])[:80]!r} lacks {data!r}"
    return ""


def judge(chaos: Chaos, *, timings: dict[str, float]) -> dict[str, Any]:
    """Check every guarantee; return the report (see DAMAGE for what must be 0)."""
    from reviewdesk.chaos.harness import KILLS, KINDS

    journal, plan = chaos.journal, chaos.plan
    details: dict[str, list[str]] = defaultdict(list)
    damage = dict.fromkeys(DAMAGE, 0)

    def finding(name: str, text: str, n: int = 1) -> None:
        damage[name] += n
        if len(details[name]) < DETAILS:
            details[name].append(text)

    ledger = _read_jsonl(chaos.ledger)
    tasks = _read_jsonl(chaos.probe_dir / "tasks.jsonl")
    deliveries = Counter(t["thread"] for t in tasks if t.get("ev") == "start")
    items_by_pk: dict[int, ReviewItem] = {}
    statuses: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    unfinished = 0
    by_graph: dict[str, Counter[str]] = defaultdict(Counter)

    # Guarantees 1 and 3: each thread against its checkpoint.
    for thread in Thread.objects.order_by("created_at"):
        graph = registry.graph_get(thread.graph)
        snapshot = graph.get_state(thread.langgraph_config)
        pending = {i.id for i in snapshot.interrupts}
        items = list(thread.items.order_by("created_at", "id"))
        items_by_pk.update({item.pk: item for item in items})
        open_items = Counter(i.interrupt_id for i in items if i.status in ReviewItem.OPEN)
        tag = f"{thread.graph} {thread.pk}"
        statuses[thread.status] += 1
        by_graph[thread.graph][thread.status] += 1
        for interrupt_id in pending:
            if thread.status == Thread.Status.FAILED:
                break  # a failed thread closes its items on purpose (counted as failed below)
            if open_items[interrupt_id] == 0:
                finding("lost_interrupts", f"{tag}: interrupt {interrupt_id} has no open item")
            elif open_items[interrupt_id] > 1:
                finding("duplicate_items", f"{tag}: {open_items[interrupt_id]} open items", 1)
        for interrupt_id, n in open_items.items():
            if interrupt_id not in pending:
                finding("duplicate_items", f"{tag}: {n} open item(s) for gone {interrupt_id}", n)
        if thread.status == Thread.Status.FAILED:
            reason = (thread.error or "?").splitlines()[0][:120]
            failures[reason] += 1
            kills = sum(str(thread.pk) in f.affected for f in journal.faults)
            runs = deliveries[str(thread.pk)]
            finding(
                "failed_threads",
                f"{tag}: {reason} [its runs killed {kills}× by the harness; {runs} deliveries]",
            )
        elif thread.status == Thread.Status.COMPLETED:
            applied = [i for i in items if i.status == ReviewItem.Status.APPLIED]
            problem = "graph still has tasks" if snapshot.tasks else ""
            problem = problem or _state_problem(thread, snapshot.values, applied)
            if problem:
                finding("wrong_final_state", f"{tag}: {problem}")
        elif thread.status != Thread.Status.CANCELLED:
            if any(i.status == ReviewItem.Status.PENDING for i in items):
                unfinished += 1  # waiting for a person at the deadline: a correct state
            else:
                states = [i.status for i in items]
                finding("stuck_threads", f"{tag}: {thread.status}, items {states}")

    # Guarantee 2, first half: every accepted answer applied, with the accepted value.
    effects: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in ledger:
        key = record.get("interrupt") or f"step {record.get('step')}"
        effects[(record["thread"], key)].append(record)
    accepted_items = Counter(a.item for a in journal.accepted)
    for answer in journal.accepted:
        item = items_by_pk.get(answer.item)
        where = f"{answer.graph} {answer.thread} item {answer.item}"
        if item is None:
            finding("lost_answers", f"{where}: the item is gone")
            continue
        if accepted_items[answer.item] > 1 and item.answer != answer.answer:
            finding("lost_answers", f"{where}: asked again after {answer.answer!r} was accepted")
            continue
        if item.status != ReviewItem.Status.APPLIED or item.answer != answer.answer:
            thread = item.thread
            why = f"item {item.status}, thread {thread.status}"
            if thread.error:
                why += f" ({thread.error.splitlines()[0][:80]})"
            finding("lost_answers", f"{where}: {why}")
            continue
        if answer.graph == "chaos_ledger":
            key = answer.interrupt if any(r.get("interrupt") for r in ledger) else None
            key = key or f"step {(item.value or {}).get('ledger_step')}"
            if not any(r["answer"] == answer.answer for r in effects.get((answer.thread, key), [])):
                finding("lost_answers", f"{where}: applied, but no effect in the ledger")

    # Guarantee 2, second half: no effect twice, unless the process that made it was killed
    # after it and before its checkpoint (LangGraph re-runs such a node: at-least-once by design).
    kills = [f for f in journal.faults if f.kind in ("pool_kill", "worker_kill")]
    rerun_after_crash = 0
    for (thread_id, key), records in effects.items():
        records.sort(key=lambda r: r["t"])
        answers = {json.dumps(r["answer"], sort_keys=True) for r in records}
        if len(answers) > 1:
            finding("double_applied", f"ledger {thread_id} {key}: different answers {answers}")
        for prev, cur in zip(records, records[1:], strict=False):
            explained = any(prev["pid"] in k.pids and prev["t"] < k.t < cur["t"] for k in kills)
            if explained:
                rerun_after_crash += 1
            else:
                finding(
                    "double_applied",
                    f"ledger {thread_id} {key}: pid {prev['pid']} then pid {cur['pid']} "
                    f"{cur['t'] - prev['t']:.2f} s later, no kill of {prev['pid']} in between",
                )

    damage["two_winners"] = len(journal.two_winners)
    details["two_winners"] = journal.two_winners[:DETAILS]
    damage["phantom_acceptances"] = len(journal.phantom)
    details["phantom_acceptances"] = journal.phantom[:DETAILS]

    # Guarantee 4: recovery after each kill or Redis restart.
    recovery: dict[str, dict[str, Any]] = {}
    for kind in KILLS:
        faults = [f for f in journal.faults if f.kind == kind]
        times = [f.recovery for f in faults if f.recovery is not None]
        killed = [f.killed_tasks_recovery for f in faults]
        killed_times = [t for t in killed if t is not None]
        never = [f for f in faults if f.recovery is None]
        over = [t for t in times if t > plan.recovery_bound]
        for fault in never:
            stuck = sorted(set(fault.owed) - set(fault.recovered))
            finding("never_recovered", f"{kind} at +{fault.t - journal.started:.0f} s: {stuck[:3]}")
        for fault in faults:
            if fault.recovery is not None and fault.recovery > plan.recovery_bound:
                finding(
                    "recoveries_over_bound",
                    f"{kind} at +{fault.t - journal.started:.0f} s ({fault.detail}): "
                    f"{fault.recovery:.1f} s",
                )
        recovery[kind] = {
            "faults": len(faults),
            "owed_threads": sum(len(f.owed) for f in faults),
            "worst_s": round(max(times), 2) if times else None,
            "median_s": round(statistics.median(times), 2) if times else None,
            "never": len(never),
            "over_bound": len(over),
            "killed_tasks": sum(len(f.affected) for f in faults),
            "killed_tasks_worst_s": round(max(killed_times), 2) if killed_times else None,
        }

    accepted_while_down = sum(1 for a in journal.accepted if a.redis_down)
    starts = [t for t in tasks if t.get("ev") == "start"]
    fault_counts = {kind: sum(1 for f in journal.faults if f.kind == kind) for kind in KINDS}
    report = {
        "run": {
            "database": connection.vendor,
            "seed": plan.seed,
            "threads": plan.threads,
            "faults_per_kind": plan.faults,
            "duration_s": plan.duration,
            "reviewers": plan.reviewers,
            "workers": [f"{w.name}: {w.pool}×{w.concurrency}" for w in chaos.desk.workers],
            "stale_after_s": plan.stale_after,
            "reconcile_interval_s": plan.reconcile_interval,
            "slow_seconds": plan.slow_seconds,
            "recovery_bound_s": plan.recovery_bound,
            "run_dir": str(plan.run_dir),
        },
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "threads": {
            "started": len(journal.threads),
            "top_ups": journal.top_ups,
            "by_status": dict(statuses),
            "by_graph": {g: dict(c) for g, c in sorted(by_graph.items())},
            "unfinished_waiting_for_reviewer": unfinished,
            "failure_reasons": dict(failures.most_common()),
        },
        "faults": {
            **fault_counts,
            "total": sum(fault_counts.values()),
            "resume_copies": journal.resume_copies,
            "copies_refused_redis_down": journal.copies_failed,
        },
        "load": {
            "answers_accepted": len(journal.accepted),
            "accepted_while_redis_down": accepted_while_down,
            "redis_down_total_s": round(sum(up - down for down, up in journal.redis_down), 1),
            "posts": dict(sorted(journal.posts.items())),
            "double_clicks": journal.double_clicks,
            "two_reviewer_races": journal.races,
            "advance_tasks_run": len(starts),
            "advance_tasks_per_answer": round(len(starts) / max(1, len(journal.accepted)), 1),
            "ledger_effects": len(ledger),
            "rerun_after_crash": rerun_after_crash,
            "thread_start_errors": len(journal.start_errors),
            "answer_post_p50_s": _quantile(journal.post_seconds, 0.5),
            "answer_post_p95_s": _quantile(journal.post_seconds, 0.95),
            "answer_post_max_s": round(max(journal.post_seconds), 2)
            if journal.post_seconds
            else None,
            "worker_restart_median_s": round(statistics.median(journal.worker_starts), 1)
            if journal.worker_starts
            else None,
        },
        "recovery": recovery,
        "damage": damage,
        "timeline": [
            {
                "kind": f.kind,
                "at_s": round(f.t - journal.started, 2),
                "detail": f.detail,
                "owed_threads": len(f.owed),
                "recovery_s": None if f.recovery is None else round(f.recovery, 2),
                "killed_tasks_recovery_s": None
                if f.killed_tasks_recovery is None
                else round(f.killed_tasks_recovery, 2),
            }
            for f in journal.faults
        ],
        "details": {k: v for k, v in details.items() if v},
        "unexpected_exits": journal.unexpected_exits,
        "harness_errors": journal.errors,
    }
    return report


def table(report: dict[str, Any]) -> str:
    """The figures as one plain-text table."""
    run, faults, load, threads = report["run"], report["faults"], report["load"], report["threads"]
    rows: list[tuple[str, str]] = [
        ("database", f"{run['database']}, workers {'; '.join(run['workers'])}"),
        (
            "threads",
            f"{threads['started']} started"
            + (f" ({threads['top_ups']} to keep pool kills fed)" if threads["top_ups"] else "")
            + ": "
            + _pairs(threads["by_status"]),
        ),
        (
            "recovery bound",
            f"{run['recovery_bound_s']:g} s (reconciler: stale after "
            f"{run['stale_after_s']:g} s, every {run['reconcile_interval_s']:g} s)",
        ),
        (
            "faults injected",
            f"{faults['total']}: pool process kill {faults['pool_kill']}, whole worker kill "
            f"{faults['worker_kill']}, Redis restart {faults['redis_restart']}, duplicate burst "
            f"{faults['duplicate_burst']}",
        ),
        ("duplicate deliveries", f"{faults['resume_copies']} extra resume copies (every answer)"),
        (
            "answers accepted",
            f"{load['answers_accepted']} "
            f"({load['accepted_while_redis_down']} while Redis was down)",
        ),
        ("answer POSTs", _pairs(load["posts"])),
        (
            "answer POST latency",
            f"p50 {load['answer_post_p50_s']} s, p95 {load['answer_post_p95_s']} s, "
            f"max {load['answer_post_max_s']} s",
        ),
        ("double-clicks / races", f"{load['double_clicks']} / {load['two_reviewer_races']}"),
        (
            "advance tasks run",
            f"{load['advance_tasks_run']} ({load['advance_tasks_per_answer']} per answer)",
        ),
        (
            "ledger effects",
            f"{load['ledger_effects']}; re-run after a crash (at-least-once, not damage): "
            f"{load['rerun_after_crash']}",
        ),
    ]
    for kind, rec in report["recovery"].items():
        worst = "-" if rec["worst_s"] is None else f"{rec['worst_s']:.1f} s"
        median = "-" if rec["median_s"] is None else f"{rec['median_s']:.1f} s"
        text = f"worst {worst}, median {median} ({rec['owed_threads']} owed threads)"
        if rec["killed_tasks_worst_s"] is not None:
            text += (
                f"; tasks running in the killed process ({rec['killed_tasks']}): worst "
                f"{rec['killed_tasks_worst_s']:.1f} s"
            )
        rows.append((f"recovery after {kind}", text))
    if load["worker_restart_median_s"] is not None:
        rows.append(("worker start to ready", f"median {load['worker_restart_median_s']} s"))
    if report["unexpected_exits"]:
        rows.append(("died on their own", str(len(report["unexpected_exits"]))))
    if threads["unfinished_waiting_for_reviewer"]:
        rows.append(("waiting for a reviewer", str(threads["unfinished_waiting_for_reviewer"])))
    for reason, n in threads["failure_reasons"].items():
        rows.append(("failed because", f"{n}× {reason}"))
    rows.append(("", ""))
    for name, value in report["damage"].items():
        rows.append((f"DAMAGE {name.replace('_', ' ')}", f"{value}" + ("" if not value else "  ✗")))
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k.ljust(width)}  {v}" for k, v in rows]
    timings = report["timings_s"]
    head = (
        f"chaos: seed {run['seed']}, {timings['total']:.0f} s "
        f"(faults {timings['fault_phase']:.0f} s, settle {timings['settle']:.0f} s)"
    )
    return "\n".join([head, *lines])


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in mapping.items()) or "-"
