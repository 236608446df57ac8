"""reviewdesk: a review desk for LangGraph interrupts."""

from __future__ import annotations

from reviewdesk.celery import app as celery_app

__all__ = ["celery_app"]
