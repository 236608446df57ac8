"""URLs: the desk under reviewdesk:, accounts and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from reviewdesk import views

desk_patterns = [
    path("", views.queue, name="queue"),
    path("items/<int:pk>/", views.item_detail, name="item"),
    path("items/<int:pk>/answer/", views.item_answer, name="item-answer"),
    path("threads/new/", views.thread_new, name="thread-new"),
    path("threads/<uuid:thread_id>/", views.thread_detail, name="thread"),
    path("threads/<uuid:thread_id>/retry/", views.thread_retry, name="thread-retry"),
]

urlpatterns = [
    path("", include((desk_patterns, "reviewdesk"))),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
