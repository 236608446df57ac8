"""Logging in: django-axes locks a username out from one address after repeated failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import AsyncClient, Client

LOCKED = "Too many failed logins for this username from your address."


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def log_in(client: Client, username: str, password: str, address: str = "127.0.0.1") -> Any:
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def logged_in(client: Client) -> bool:
    return client.get("/").status_code == 200


def fail(client: Client, username: str, times: int, address: str = "127.0.0.1") -> None:
    for _ in range(times):
        assert log_in(client, username, "wrong", address).status_code in (200, 429)


def test_the_lockout_holds_even_for_the_right_password(client: Client, reviewer: Any) -> None:
    fail(client, "rita", 60)
    response = log_in(client, "rita", "pw")
    html = response.content.decode()
    assert response.status_code == 429
    assert LOCKED in html
    assert "blocked for 15 minutes" in html
    assert '<form method="post" action="/accounts/login/">' in html  # still the login page
    assert not logged_in(client)


def test_the_limit_is_ten_failures_and_a_success_starts_the_count_again(
    client: Client, reviewer: Any
) -> None:
    fail(client, "rita", 9)
    assert log_in(client, "rita", "pw").status_code == 302
    assert logged_in(client)
    client.post("/accounts/logout/")
    fail(client, "rita", 9)  # nine more: the success reset the count
    assert log_in(client, "rita", "pw").status_code == 302
    client.post("/accounts/logout/")
    fail(client, "rita", 10)
    assert log_in(client, "rita", "pw").status_code == 429


def test_wrong_passwords_get_the_usual_message_until_the_lockout(
    client: Client, reviewer: Any
) -> None:
    response = log_in(client, "rita", "wrong")
    assert response.status_code == 200
    assert "Your username and password didn't match." in response.content.decode()
    assert LOCKED not in response.content.decode()


def test_the_lockout_is_per_username_and_address(
    client: Client, reviewer: Any, other_reviewer: Any
) -> None:
    """A guesser cannot lock a reviewer out from elsewhere, nor lock out their neighbours."""
    fail(client, "rita", 10)
    assert log_in(client, "rita", "pw").status_code == 429
    assert log_in(client, "oscar", "pw").status_code == 302
    other = Client()
    assert log_in(other, "rita", "pw", address="10.0.0.2").status_code == 302
    assert logged_in(other)


def test_the_lockout_ends_after_the_cooloff(client: Client, reviewer: Any) -> None:
    fail(client, "rita", 10)
    assert log_in(client, "rita", "pw").status_code == 429
    for attempt in AccessAttempt.objects.all():  # as if 16 minutes had passed
        attempt.attempt_time -= timedelta(minutes=16)
        attempt.save()
    assert log_in(client, "rita", "pw").status_code == 302
    assert logged_in(client)


def test_an_administrator_can_unlock_a_username(client: Client, reviewer: Any) -> None:
    fail(client, "rita", 10)
    call_command("axes_reset_username", "rita", verbosity=0)
    assert log_in(client, "rita", "pw").status_code == 302


def test_the_lockout_holds_through_the_asgi_handler(db: None, reviewer: Any) -> None:
    """Daphne serves requests through Django's async middleware path, which axes handles apart."""

    async def scenario() -> tuple[int, str, int]:
        client = AsyncClient()
        for _ in range(10):
            await client.post("/accounts/login/", {"username": "rita", "password": "wrong"})
        response = await client.post("/accounts/login/", {"username": "rita", "password": "pw"})
        return response.status_code, response.content.decode(), (await client.get("/")).status_code

    status, html, queue_status = async_to_sync(scenario)()
    assert (status, queue_status) == (429, 302)
    assert LOCKED in html


def test_the_admin_login_is_throttled_too(client: Client, staff: Any) -> None:
    for _ in range(10):
        client.post("/admin/login/", {"username": "stella", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "stella", "password": "pw"})
    assert response.status_code == 429
    assert client.get("/admin/").status_code == 302


def settings_from(env: dict[str, str], *names: str) -> dict[str, Any]:
    """Settings as a fresh process computes them from this environment."""
    code = (
        "import json, reviewdesk.settings as s; "
        f"print(json.dumps({{n: str(getattr(s, n)) for n in {list(names)!r}}}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "REVIEWDESK_"))}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_the_lockout_is_configured_from_the_environment() -> None:
    names = ("AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME")
    assert settings_from({}, *names) == {"AXES_FAILURE_LIMIT": "10", "AXES_COOLOFF_TIME": "0:15:00"}
    env = {"REVIEWDESK_LOGIN_FAILURE_LIMIT": "3", "REVIEWDESK_LOGIN_COOLOFF": "60"}
    assert settings_from(env, *names) == {"AXES_FAILURE_LIMIT": "3", "AXES_COOLOFF_TIME": "1:00:00"}


# --- password reset by mail ---------------------------------------------------------------------

RESET_PAGES = (
    "/accounts/password_reset/",
    "/accounts/password_reset/done/",
    "/accounts/reset/MQ/set-password/",
    "/accounts/reset/MQ/abc-123/",
    "/accounts/reset/done/",
)


def test_a_reset_mail_is_sent_and_its_link_sets_a_new_password(
    client: Client, reviewer: Any, settings: Any, mailoutbox: list[Any]
) -> None:
    settings.REVIEWDESK_PASSWORD_RESET = True
    reviewer.email = "rita@example.com"
    reviewer.save()

    login_page = client.get("/accounts/login/").content.decode()
    assert '<a href="/accounts/password_reset/">Forgot your password?</a>' in login_page
    form = client.get("/accounts/password_reset/")
    assert form.status_code == 200
    assert "<h1>Reset your password</h1>" in form.content.decode()
    assert 'class="topbar"' in form.content.decode()  # the desk's own page, not the admin's

    response = client.post("/accounts/password_reset/", {"email": "rita@example.com"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_reset/done/"
    assert "Check your email" in client.get(response["Location"]).content.decode()

    [mail] = mailoutbox
    assert mail.to == ["rita@example.com"]
    assert mail.subject == "Reset your reviewdesk password"
    assert "password of rita at testserver" in mail.body
    [link] = [line for line in mail.body.splitlines() if line.startswith("http://testserver/")]

    set_password = client.get(link.removeprefix("http://testserver"))
    assert set_password.status_code == 302  # the token moves into the session
    page = client.get(set_password["Location"])
    assert "<h1>Choose a new password</h1>" in page.content.decode()
    done = client.post(
        set_password["Location"],
        {"new_password1": "a-new-long-secret", "new_password2": "a-new-long-secret"},
    )
    assert done["Location"] == "/accounts/reset/done/"
    assert "Password changed" in client.get(done["Location"]).content.decode()

    assert log_in(Client(), "rita", "pw").status_code == 200  # the old password is gone
    fresh = Client()
    assert log_in(fresh, "rita", "a-new-long-secret").status_code == 302
    assert logged_in(fresh)
    # The link worked once.
    used = client.get(link.removeprefix("http://testserver"), follow=True)
    assert "This link no longer works" in used.content.decode()


def test_no_mail_is_sent_for_an_unknown_address(
    client: Client, reviewer: Any, settings: Any, mailoutbox: list[Any]
) -> None:
    settings.REVIEWDESK_PASSWORD_RESET = True
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/accounts/password_reset/done/"  # says nothing either way
    assert mailoutbox == []


def test_without_mail_password_reset_does_not_exist(
    client: Client, reviewer: Any, settings: Any, mailoutbox: list[Any]
) -> None:
    settings.REVIEWDESK_PASSWORD_RESET = False
    reviewer.email = "rita@example.com"
    reviewer.save()
    for url in RESET_PAGES:
        assert client.get(url).status_code == 404, url
    assert client.post("/accounts/password_reset/", {"email": "rita@example.com"}).status_code == (
        404
    )
    assert mailoutbox == []
    login_page = client.get("/accounts/login/").content.decode()
    assert "Forgot your password?" not in login_page
    assert "/accounts/password_reset/" not in login_page


def test_mail_and_reset_follow_the_environment() -> None:
    names = ("EMAIL_BACKEND", "REVIEWDESK_PASSWORD_RESET", "EMAIL_HOST", "EMAIL_PORT")
    production = {"REVIEWDESK_DEBUG": "0", "SECRET_KEY": "x" * 50}
    assert settings_from(production, *names) == {
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "REVIEWDESK_PASSWORD_RESET": "False",
        "EMAIL_HOST": "",
        "EMAIL_PORT": "25",
    }
    assert settings_from({"REVIEWDESK_DEBUG": "1"}, *names[:2]) == {
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "REVIEWDESK_PASSWORD_RESET": "True",
    }
    smtp = {**production, "EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": "587"}
    assert settings_from(smtp, *names) == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "REVIEWDESK_PASSWORD_RESET": "True",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": "587",
    }


def test_in_production_without_mail_the_reset_pages_are_404s() -> None:
    """The whole stack in a fresh process with DEBUG off and no EMAIL_HOST."""
    code = (
        "import django; django.setup(); from django.test import Client; c = Client(); "
        f"print([c.get(u).status_code for u in {list(RESET_PAGES)!r}], "
        "'Forgot your password?' in c.get('/accounts/login/').content.decode())"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "REVIEWDESK_"))}
    env = {
        **clean,
        "DJANGO_SETTINGS_MODULE": "reviewdesk.settings",
        "REVIEWDESK_DEBUG": "0",
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "testserver",
        "REVIEWDESK_VAR_DIR": str(django_settings.VAR_DIR),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[404, 404, 404, 404, 404] False"
