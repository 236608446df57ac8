"""The LangGraph side of the desk: registry, checkpointer, runs, the reconciler.

Django-aware but HTTP-free. Services call it; nothing above it calls LangGraph.
"""
