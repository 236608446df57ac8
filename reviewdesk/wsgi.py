"""WSGI entry point for plain HTTP in production (gunicorn); WebSockets stay on Daphne (asgi.py).

One Daphne process served the queue page at ~70 requests/s, CPU-bound on one core; plain
HTTP through several WSGI processes (no event-loop hop per request) uses every core.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewdesk.settings")
application = get_wsgi_application()
