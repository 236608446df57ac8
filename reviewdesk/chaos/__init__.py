"""`manage.py chaos`: fault injection against a private desk (run.py → harness.py → verdict.py).

graphs.py and probe.py are loaded by the desk's own processes; nothing here is imported by the
desk when it is not under test.
"""
