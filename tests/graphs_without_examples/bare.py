"""Asks once, then finishes; defines no EXAMPLE_INPUT."""

from __future__ import annotations

from tests.graphs_for_tests import slow_builder as graph

__all__ = ["graph"]
