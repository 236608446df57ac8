"""URLs: the desk under reviewdesk:, accounts and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from reviewdesk.views import accounts, health, history, inbox, items, ops, threads

desk_patterns = [
    path("", inbox.queue, name="queue"),
    path("items/<int:pk>/", items.item_detail, name="item"),
    path("items/<int:pk>/answer/", items.item_answer, name="item-answer"),
    # Workbench: claims (contracts: claim/ and release/), presence, drafts, bulk, the count.
    path("items/<int:pk>/claim/", items.item_claim, name="item-claim"),
    path("items/<int:pk>/release/", items.item_release, name="item-release"),
    path("items/<int:pk>/break-claim/", items.item_claim_break, name="item-claim-break"),
    path("items/<int:pk>/heartbeat/", items.item_heartbeat, name="item-heartbeat"),
    path("items/<int:pk>/leave/", items.item_leave, name="item-leave"),
    path("items/<int:pk>/draft/", items.item_draft, name="item-draft"),
    path("items/bulk/", inbox.bulk_decide, name="items-bulk"),
    path("items/count/", inbox.pending_count, name="pending-count"),
    path("threads/new/", threads.thread_new, name="thread-new"),
    path("threads/<uuid:thread_id>/", threads.thread_detail, name="thread"),
    path("threads/<uuid:thread_id>/retry/", threads.thread_retry, name="thread-retry"),
    # History (staff): the thread list, actions with a reason, exports.
    path("threads/", history.thread_list, name="threads"),
    path(
        "threads/<uuid:thread_id>/history/<str:action>/",
        history.thread_action,
        name="thread-action",
    ),
    path("threads/<uuid:thread_id>/export/", history.thread_export, name="thread-export"),
    path("audit/export/", history.audit_export, name="audit-export"),
    # Ops (staff or the "ops" group)
    path("ops/", ops.ops_page, name="ops"),
    path("ops/sweep/", ops.ops_sweep, name="ops-sweep"),
    path("ops/threads/<uuid:thread_id>/retry/", ops.ops_retry, name="ops-retry"),
    path("ops/threads/<uuid:thread_id>/repair/<str:kind>/", ops.ops_repair, name="ops-repair"),
]

# django.contrib.auth.urls, with the desk's login and reset pages that exist only with mail.
account_patterns = [
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("password_reset/", accounts.password_reset, name="password_reset"),
    path("password_reset/done/", accounts.password_reset_done, name="password_reset_done"),
    path("reset/<uidb64>/<token>/", accounts.password_reset_confirm, name="password_reset_confirm"),
    path("reset/done/", accounts.password_reset_complete, name="password_reset_complete"),
]

urlpatterns = [
    path("", include((desk_patterns, "reviewdesk"))),
    # For machines: Prometheus (token or staff) and load balancers (no login; the middleware
    # answers the health checks first, these routes name them).
    path("metrics", ops.metrics, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/", include(account_patterns)),
    path("admin/", admin.site.urls),
]
