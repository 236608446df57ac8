"""Logging in (with django-axes' lockout) and resetting a password by mail, when mail is set up."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render


def password_reset_available() -> bool:
    """Whether a reset mail can actually leave; otherwise the reset pages would lie."""
    return settings.REVIEWDESK_PASSWORD_RESET


class LoginView(auth_views.LoginView):
    """Django's login, offering a password reset only when one can be sent."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "password_reset_available": password_reset_available(),
        }


def login_locked_out(request: HttpRequest, *args: Any) -> HttpResponse:
    """django-axes' lockout response: the login page again, saying why and for how long.

    axes passes (request, response, credentials), or (request, credentials) from its async
    middleware; neither is needed here.
    """
    cooloff = settings.AXES_COOLOFF_TIME
    context = {
        "form": AuthenticationForm(request),
        "locked_out": True,
        "cooloff_minutes": round(cooloff.total_seconds() / 60) if cooloff else None,
        "password_reset_available": password_reset_available(),
    }
    return render(request, "registration/login.html", context, status=429)


def when_reset_available(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A password-reset page, or a 404 when no mail can be sent (checked per request)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not password_reset_available():
            raise Http404("Password reset is not available.")
        return view(request, *args, **kwargs)

    return login_not_required(wrapped)


password_reset = when_reset_available(auth_views.PasswordResetView.as_view())
password_reset_done = when_reset_available(auth_views.PasswordResetDoneView.as_view())
password_reset_confirm = when_reset_available(auth_views.PasswordResetConfirmView.as_view())
password_reset_complete = when_reset_available(auth_views.PasswordResetCompleteView.as_view())
