"""The queue-scale measurement runs on the test database and leaves nothing behind."""

from __future__ import annotations

from typing import Any

import pytest

from reviewdesk import bench
from reviewdesk.bench import queue_scale
from reviewdesk.models import Queue, ReviewItem, Thread


@pytest.mark.django_db(transaction=True)
def test_queue_scale_measures_every_figure_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setattr(bench, "TINY", True)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    rows = queue_scale.measure(quick=True)
    assert all(bench.well_formed(r) for r in rows)
    figures = [r["figure"] for r in rows]
    assert any(f.startswith("queue page (first page), 500 pending") for f in figures)
    assert any(f.startswith("queue page (a later keyset page), 500 pending") for f in figures)
    assert all(r["value"] > 0 for r in rows)
    judged = [r for r in rows if r["target"]]
    assert len(judged) == 2 and all(isinstance(r["pass"], bool) for r in judged)
    # Everything it seeded is gone.
    assert not Queue.objects.filter(slug__startswith=queue_scale.SLUG).exists()
    assert not ReviewItem.objects.exists()
    assert not Thread.objects.exists()
