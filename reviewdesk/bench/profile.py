"""Where the time goes: py-spy's raw (collapsed) stacks summed into self and inclusive shares.

`bench --profile` records one raw file per process and measurement; `summary()` turns it into
the two lists a person reads first: the functions that were on the CPU (self) and the calls
that contain the most samples (inclusive), each with its share of all samples.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame(text: str) -> str:
    """`func (path/to/module.py:123)` → `func (module.py)`; threads and processes as they are."""
    found = _FRAME.match(text.strip())
    if not found:
        return text.strip()
    path = found["file"]
    if "/reviewdesk/" in path and "site-packages" not in path:
        return f"{found['func']} (reviewdesk/{path.split('/reviewdesk/', 1)[1]})"
    for marker in ("site-packages/", "/lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{found['func']} ({path})"


# Leaf frames of a thread that waits (py-spy's idle detection misses some without pausing the
# process): a pool thread waiting for work, a selector, a condition, a sleep.
WAITING = (
    "_worker (concurrent/futures/thread.py)",
    "EpollSelector.select (selectors.py)",
    "_epoll.poll (",
    "Condition.wait (threading.py)",
    "Thread._wait_for_tstate_lock (threading.py)",
    "Event.wait (threading.py)",
    "select (selectors.py)",
    "sleep (",
)
# Frames that sit on every stack of a thread and say nothing about where the time goes.
_PLUMBING = ("(threading.py)", "(concurrent/futures/thread.py)", "<module> (")


def summary(raw: Path, top: int = 20) -> str:
    """Self and inclusive shares of the busy samples (waiting threads counted apart)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.read_text(errors="replace").splitlines():
        found = _LINE.match(line)
        if not found:
            continue
        count = int(found[2])
        frames = [_frame(f) for f in found[1].split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        if frames[-1].startswith(WAITING):
            waiting += count
            continue
        own[frames[-1]] += count
        for frame in set(frames):
            if not any(p in frame for p in _PLUMBING):
                inclusive[frame] += count
    busy = total - waiting
    if not busy:
        return f"{raw.name}: no busy samples\n"
    out = [
        f"{raw.name}: {total} samples, {busy} busy ({100 * busy / total:.0f}%); "
        "shares below are of the busy ones",
        "",
        "self (the function on the stack's top):",
    ]
    out += [f"  {100 * n / busy:5.1f}%  {f}" for f, n in own.most_common(top)]
    out += ["", "inclusive (the call and everything under it):"]
    out += [f"  {100 * n / busy:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    ours = [(f, n) for f, n in inclusive.most_common() if "(reviewdesk/" in f]
    out += ["", "inclusive, the desk's own functions:"]
    out += [f"  {100 * n / busy:5.1f}%  {f}" for f, n in ours[:top]]
    return "\n".join(out) + "\n"
