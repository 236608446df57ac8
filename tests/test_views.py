"""Pages through Django's test client on real graphs: who sees what, answering, escaping, CSRF.

Tests run inside a transaction, so nothing leaves on commit (no Celery task, no push); a test
that needs the graph to consume an answer calls ``runs.thread_advance`` as the worker would.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import pytest
from django.test import Client

from reviewdesk.engine import registry, runs
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.payloads import summary
from reviewdesk.services import items as item_services
from tests.factories import GroupFactory, QueueFactory, ReviewItemFactory, ThreadFactory
from tests.support import pending, start

HTMX = {"HX-Request": "true"}

# Graph-surfaced text is attacker-influenced (LLM output, tool results).
XSS = '<script>alert(1)</script><img src=x onerror=alert(1)>hx-get="/admin/"'
RAW = ("<script>alert(1)", "<img src=x", 'hx-get="/admin/"')
ESCAPED = (
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&lt;img src=x onerror=alert(1)&gt;",
    "hx-get=&quot;/admin/&quot;",
)


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    """The test client's host (the settings allow 127.0.0.1 and localhost only), and a fast
    password hasher for the factories' users (PBKDF2 costs ~0.2 s per user)."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- helpers ------------------------------------------------------------------------------------


def asked(graph: str, staff: Any) -> ReviewItem:
    """The first question a real run of an example graph asks."""
    return pending(start(graph, registry.graph_specs()[graph].example_input, staff))[0]


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def answer_url(item: ReviewItem) -> str:
    return f"/items/{item.pk}/answer/"


def answers_recorded(item: ReviewItem) -> int:
    return AuditEvent.objects.filter(item=item, action="item_answered").count()


def last_message(thread: Thread) -> str:
    values = registry.graph_get(thread.graph).get_state(thread.langgraph_config).values
    return values["messages"][-1].content


def hitl_value(name: str = "send_email", allowed: list[str] | None = None) -> dict[str, Any]:
    return {
        "action_requests": [
            {"name": name, "args": {"to": "bob@example.com"}, "description": "Send it?"}
        ],
        "review_configs": [
            {"action_name": name, "allowed_decisions": allowed or ["approve", "reject"]}
        ],
    }


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Page(HTMLParser):
    """What the tests read from a page: its texts (and whether htmx is disabled around each),
    its inputs, its scripts and the <body> attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool]] = []  # open elements: (tag, inside hx-disable)
        self.texts: list[tuple[str, bool]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.inline_scripts: list[str] = []
        self.body: dict[str, str | None] = {}
        self.feed(html)
        self.close()

    def _disabled(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        disabled = self._disabled() or "hx-disable" in attributes
        self.texts.extend((f"{name}={value}", disabled) for name, value in attrs)
        if tag == "input":
            self.inputs.append(attributes)
        elif tag == "script":
            self.scripts.append(attributes)
        elif tag == "body":
            self.body = attributes
        if tag not in VOID:
            self.stack.append((tag, disabled))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1][0] == "script" and data.strip():
            self.inline_scripts.append(data)
        self.texts.append((data, self._disabled()))

    def radios(self, name: str) -> list[str]:
        return [i["value"] or "" for i in self.inputs if i.get("name") == name]

    def checked(self, name: str) -> list[str]:
        return [i["value"] or "" for i in self.inputs if i.get("name") == name and "checked" in i]

    def live_texts(self, needle: str) -> list[str]:
        """Texts containing needle that htmx would process (no hx-disable around them)."""
        return [text for text, disabled in self.texts if needle in text and not disabled]


def page(response: Any) -> Page:
    return Page(response.content.decode())


def assert_escaped(html: str, escaped: tuple[str, ...] = ESCAPED) -> None:
    for raw in RAW:
        assert raw not in html
    for form in escaped:
        assert form in html


# --- login required ---------------------------------------------------------------------------


def test_every_page_sends_anonymous_users_to_login(client: Client, db: None) -> None:
    item = ReviewItemFactory()
    thread = item.thread
    requests = [
        ("get", "/"),
        ("get", "/?queue=default"),
        ("get", f"/items/{item.pk}/"),
        ("post", answer_url(item)),
        ("get", "/threads/new/"),
        ("post", "/threads/new/"),
        ("get", f"/threads/{thread.pk}/"),
        ("post", f"/threads/{thread.pk}/retry/"),
    ]
    for method, url in requests:
        data = {"mode": "text", "answer": "42", "graph": "age", "input": "{}"}
        response = getattr(client, method)(url, data if method == "post" else None)
        assert response.status_code == 302, (method, url)
        assert response["Location"] == f"/accounts/login/?next={quote(url, safe='/')}"
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING
    assert Thread.objects.count() == 1
    assert not AuditEvent.objects.exists()


def test_the_login_page_is_open_and_logs_a_reviewer_in(client: Client, reviewer: Any) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Log in" in response.content
    response = client.post("/accounts/login/", {"username": "rita", "password": "pw"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


# --- the queue --------------------------------------------------------------------------------


def test_reviewer_sees_the_pending_items_of_their_queues_only(
    client: Client, reviewer: Any, staff: Any
) -> None:
    item = asked("age", staff)
    ReviewItemFactory(value="Already answered", status=ReviewItem.Status.ANSWERED)
    legal = QueueFactory(slug="legal", name="Legal", groups=[GroupFactory(name="lawyers")])
    ReviewItemFactory(value="A question for lawyers", thread=ThreadFactory(queue=legal))

    response = login(client, reviewer).get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert f'href="/items/{item.pk}/"' in html
    assert "What is your age?" in html
    assert "ask_age" in html
    assert "Already answered" not in html
    assert "A question for lawyers" not in html
    assert "You are not a reviewer" not in html
    # Naming another queue does not open it.
    assert client.get("/?queue=legal").status_code == 404
    assert "What is your age?" in client.get("/?queue=default").content.decode()


def test_outsider_sees_no_items_and_gets_404_for_an_item(
    client: Client, outsider: Any, staff: Any
) -> None:
    item = asked("age", staff)
    login(client, outsider)

    html = client.get("/").content.decode()
    assert "You are not a reviewer of any queue yet." in html
    assert "What is your age?" not in html
    assert f"/items/{item.pk}/" not in html

    assert client.get(f"/items/{item.pk}/").status_code == 404
    response = client.post(answer_url(item), {"mode": "text", "answer": "42"})
    assert response.status_code == 404
    item.refresh_from_db()
    assert (item.status, item.answer) == (ReviewItem.Status.PENDING, None)
    assert answers_recorded(item) == 0


def test_reviewer_gets_404_for_an_item_of_another_queue(client: Client, reviewer: Any) -> None:
    legal = QueueFactory(slug="legal", name="Legal", groups=[GroupFactory(name="lawyers")])
    item = ReviewItemFactory(thread=ThreadFactory(queue=legal))
    login(client, reviewer)
    assert client.get(f"/items/{item.pk}/").status_code == 404
    assert client.post(answer_url(item), {"mode": "text", "answer": "42"}).status_code == 404
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING


def test_htmx_queue_refresh_returns_only_the_list_fragment(
    client: Client, reviewer: Any, staff: Any
) -> None:
    item = asked("age", staff)
    login(client, reviewer)
    response = client.get("/", headers={**HTMX, "HX-Target": "queue-items"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith('<div id="queue-items"')
    assert html.strip().endswith("</div>")
    assert f'id="item-{item.pk}"' in html
    assert "What is your age?" in html
    for chrome in ("<html", "<header", "<h1", "empty-note", "ws-connect"):
        assert chrome not in html
    # Another htmx target gets the whole page.
    other = client.get("/", headers={**HTMX, "HX-Target": "elsewhere"}).content.decode()
    assert "<html" in other


# --- item pages, one per kind ---------------------------------------------------------------


def test_question_item_page(client: Client, reviewer: Any, staff: Any) -> None:
    item = asked("age", staff)
    response = login(client, reviewer).get(f"/items/{item.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<blockquote class="question">What is your age?</blockquote>' in html
    assert "Raw JSON" not in html
    assert f'hx-post="/items/{item.pk}/answer/"' in html
    assert page(response).checked("mode") == ["text"]
    assert "Text is sent as a string" in html


def test_assistance_item_page(client: Client, reviewer: Any, staff: Any) -> None:
    item = asked("chatbot", staff)
    response = login(client, reviewer).get(f"/items/{item.pk}/")
    html = response.content.decode()
    assert item.value["query"].startswith("A user is asking for expert help")
    assert "<dt>query</dt>" in html
    assert item.value["query"] in html
    # The chatbot's module declares the answer: one text field, sent as {"data": text}.
    assert '<textarea name="f__data"' in html
    assert '>Your reply <span class="req"' in html
    assert page(response).checked("mode") == []
    # The thread's conversation is the context.
    assert "calls <strong>human_assistance</strong>" in html
    # Without a declaration, {"query"} items still get text sent as {"data": ...}.
    other = ReviewItemFactory(value={"query": "Help?"})
    html = client.get(f"/items/{other.pk}/").content.decode()
    assert 'Text is sent as <code>{"data": "your text"}</code>' in html


def test_hitl_item_page_offers_the_allowed_decisions_of_each_action(
    client: Client, reviewer: Any, staff: Any
) -> None:
    item = asked("agent", staff)
    response = login(client, reviewer).get(f"/items/{item.pk}/")
    html = response.content.decode()
    assert "The agent wants to run 1 tool call; decide each." in html
    assert "<legend>1. send_email</legend>" in html
    assert "Send an email to alice@example.com with subject" in html
    assert page(response).radios("decision_0") == ["approve", "edit", "reject", "respond"]
    # Nothing is preselected: an Approve nobody chose used to drop typed arguments silently.
    assert page(response).checked("decision_0") == []
    # Edited arguments are typed fields from the tool's schema, filled with the proposal.
    assert 'name="a0__to"' in html and 'value="alice@example.com"' in html
    assert 'name="a0__body"' in html
    assert "Raw JSON" in html
    assert 'name="mode"' not in html  # HITL items get the decision form, not free text


def test_hitl_radio_choices_are_limited_to_allowed_decisions(client: Client, reviewer: Any) -> None:
    item = ReviewItemFactory(value=hitl_value(allowed=["approve", "reject"]))
    response = login(client, reviewer).get(f"/items/{item.pk}/")
    assert page(response).radios("decision_0") == ["approve", "reject"]
    assert page(response).radios("decision_1") == []


def test_generic_json_item_page_shows_the_value_and_a_raw_json_details(
    client: Client, reviewer: Any, staff: Any
) -> None:
    # A mapping whose graph declares no answer shape (parallel_approval now does).
    value = {"question": "Approve this?", "draft": "Hello", "reviewer_role": "legal"}
    item = ReviewItemFactory(value=value)
    response = login(client, reviewer).get(f"/items/{item.pk}/")
    html = response.content.decode()
    assert set(item.value) == {"question", "draft", "reviewer_role"}
    assert '<dl class="value-map">' in html
    assert "<dt>reviewer_role</dt>" in html
    raw = re.search(
        r'<details class="raw"><summary>Raw JSON</summary><pre class="json">(.*?)</pre></details>',
        html,
        re.DOTALL,
    )
    assert raw is not None
    assert "&quot;reviewer_role&quot;: &quot;" in raw.group(1)
    assert page(response).checked("mode") == ["json"]


# --- escaping untrusted values ------------------------------------------------------------------

XSS_VALUES = {
    "question": f"Is this fine? {XSS}",
    "dict keys and values": {XSS: [XSS, {"nested": XSS}], "ok": XSS},
    "hitl": {
        "action_requests": [{"name": XSS, "args": {XSS: XSS}, "description": XSS}],
        "review_configs": [{"action_name": XSS, "allowed_decisions": ["approve", "edit"]}],
    },
}


@pytest.mark.parametrize("value", XSS_VALUES.values(), ids=XSS_VALUES.keys())
def test_untrusted_values_are_escaped_and_inert_on_the_item_page(
    client: Client, reviewer: Any, value: Any
) -> None:
    item = ReviewItemFactory(value=value)
    response = login(client, reviewer).get(f"/items/{item.pk}/")
    assert response.status_code == 200
    assert_escaped(response.content.decode())
    # Injected hx-* text sits inside an hx-disable container wherever it appears.
    assert page(response).live_texts("alert(1)") == []
    assert page(response).inline_scripts == []


@pytest.mark.parametrize("value", XSS_VALUES.values(), ids=XSS_VALUES.keys())
def test_untrusted_values_are_escaped_and_inert_in_the_queue(
    client: Client, reviewer: Any, value: Any
) -> None:
    item = ReviewItemFactory(value=value)
    assert "alert(1)" in summary(value)
    login(client, reviewer)
    for response in (
        client.get("/"),
        client.get("/", headers={**HTMX, "HX-Target": "queue-items"}),
    ):
        html = response.content.decode()
        assert f'id="item-{item.pk}"' in html
        # A summary of a mapping is its JSON, whose quotes are backslashed.
        assert_escaped(html, ESCAPED[:2])
        assert page(response).live_texts("alert(1)") == []


def test_untrusted_values_are_escaped_on_the_thread_page(client: Client, staff: Any) -> None:
    thread = ThreadFactory(input={XSS: XSS})
    ReviewItemFactory(thread=thread, value={XSS: XSS}, answer={XSS: XSS})
    response = login(client, staff).get(f"/threads/{thread.pk}/")
    assert response.status_code == 200
    assert_escaped(response.content.decode(), ESCAPED[:2])
    assert page(response).live_texts("alert(1)") == []


# --- answering ----------------------------------------------------------------------------------


def test_text_answer_records_the_decision_queues_the_thread_and_audits(
    client: Client, reviewer: Any, staff: Any
) -> None:
    item = asked("age", staff)
    response = login(client, reviewer).post(answer_url(item), {"mode": "text", "answer": " 42 "})
    assert response.status_code == 302
    assert response["Location"] == f"/items/{item.pk}/"

    item.refresh_from_db()
    assert item.status == ReviewItem.Status.ANSWERED
    assert (item.answer, item.answered_by) == ("42", reviewer)
    assert item.thread.status == Thread.Status.QUEUED
    [event] = AuditEvent.objects.filter(item=item, action="item_answered")
    assert (event.actor, event.data["answer"]) == (reviewer, "42")
    # The decision record (issue 8): how the reviewer was logged in, a hash of what they saw.
    assert event.data["via"].startswith("web session ")
    assert len(event.data["payload_hash"]) == 64

    html = client.get(response["Location"]).content.decode()
    assert "Your answer" not in html
    assert "by rita" in html
    # And the graph takes the answer as given.
    runs.thread_advance(thread_id=item.thread_id)
    values = registry.graph_get("age").get_state(item.thread.langgraph_config).values
    assert values["greeting"] == "Hello Ada, you are 42 years old."


def test_htmx_answer_returns_the_panel_with_the_decision(
    client: Client, reviewer: Any, staff: Any
) -> None:
    item = asked("age", staff)
    login(client, reviewer)
    response = client.post(
        answer_url(item),
        {"mode": "json", "answer": "42"},
        headers={**HTMX, "HX-Target": "answer-panel"},
    )
    html = response.content.decode().strip()
    assert response.status_code == 200
    assert html.startswith('<section id="answer-panel"')
    assert html.endswith("</section>")
    assert "<html" not in html
    assert "<form" not in html
    assert ">Decision</h2>" in html
    assert "Answered" in html
    assert "by rita" in html
    assert '<pre class="json" hx-disable>42</pre>' in html
    item.refresh_from_db()
    assert (item.status, item.answer) == (ReviewItem.Status.ANSWERED, 42)


def test_assistance_text_answer_travels_as_data(client: Client, reviewer: Any, staff: Any) -> None:
    # The chatbot declares a one-field form (REVIEW_FORMS): the reviewer types plain text.
    item = asked("chatbot", staff)
    login(client, reviewer).post(answer_url(item), {"f__data": "Use LangGraph."})
    item.refresh_from_db()
    assert item.answer == {"data": "Use LangGraph."}
    runs.thread_advance(thread_id=item.thread_id)
    item.thread.refresh_from_db()
    assert item.thread.status == Thread.Status.COMPLETED
    assert last_message(item.thread) == "Here is what the expert said: Use LangGraph."


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize(
    ("mode", "text", "error"),
    [
        ("json", "{oops", "That is not valid JSON: Expecting property name enclosed in double"),
        ("json", "", "Type an answer first."),
        ("text", "   ", "Type an answer first."),
    ],
)
def test_invalid_answer_is_refused_inline_and_changes_nothing(
    client: Client, reviewer: Any, staff: Any, mode: str, text: str, error: str, htmx: bool
) -> None:
    item = asked("age", staff)
    login(client, reviewer)
    headers = {**HTMX, "HX-Target": "answer-panel"} if htmx else {}
    response = client.post(answer_url(item), {"mode": mode, "answer": text}, headers=headers)
    html = response.content.decode()
    assert response.status_code == 422
    assert error in html
    assert 'role="alert"' in html or "errorlist" in html
    assert "Your answer" in html  # the form is still there, with what was typed
    assert ("<html" in html) is not htmx
    item.refresh_from_db()
    assert (item.status, item.answer, item.answered_by) == (ReviewItem.Status.PENDING, None, None)
    assert item.thread.status == Thread.Status.INTERRUPTED
    assert answers_recorded(item) == 0


@pytest.mark.parametrize("text", ['{"score": NaN}', "1" * 5000], ids=["nan", "5000-digits"])
def test_json_the_desk_cannot_store_is_refused_inline(
    client: Client, reviewer: Any, text: str
) -> None:
    """Python's json.loads reads these, but they are not JSON (NaN, Infinity: the JSONField's
    check fails) or not numbers it will convert (over 4300 digits: a plain ValueError)."""
    item = ReviewItemFactory()
    response = login(client, reviewer).post(answer_url(item), {"mode": "json", "answer": text})
    assert response.status_code == 422
    assert 'role="alert"' in response.content.decode()
    item.refresh_from_db()
    assert (item.status, item.answer) == (ReviewItem.Status.PENDING, None)
    assert answers_recorded(item) == 0


def test_a_refused_answer_mode_is_explained(client: Client, reviewer: Any) -> None:
    """A 422 must say why: the panel shows the answer's errors but drops the mode's."""
    item = ReviewItemFactory()
    response = login(client, reviewer).post(answer_url(item), {"mode": "yaml", "answer": "42"})
    assert response.status_code == 422
    assert "Select a valid choice. yaml is not one of the available choices." in (
        response.content.decode()
    )
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING


def test_answer_the_graph_cannot_take_is_refused_with_the_reason(
    client: Client, reviewer: Any, staff: Any
) -> None:
    # {"query"} from a graph that declares nothing: the human_assistance convention.
    item = ReviewItemFactory(value={"query": "Help?"})
    response = login(client, reviewer).post(
        answer_url(item), {"mode": "json", "answer": '"no data key"'}
    )
    assert response.status_code == 422
    assert (
        '<div class="error" role="alert"><p>This question expects '
        "{&quot;data&quot;: &quot;your reply&quot;}.</p></div>"
    ) in response.content.decode()
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING
    assert answers_recorded(item) == 0


def test_hitl_approve_goes_through_to_the_agent(client: Client, reviewer: Any, staff: Any) -> None:
    item = asked("agent", staff)
    data = {"decision_0": "approve", "message_0": ""}
    response = login(client, reviewer).post(answer_url(item), data)
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.answer == {"decisions": [{"type": "approve"}]}
    runs.thread_advance(thread_id=item.thread_id)
    assert last_message(item.thread).startswith("Done. Email sent to alice@example.com")


def test_hitl_edit_sends_the_edited_arguments(client: Client, reviewer: Any, staff: Any) -> None:
    item = asked("agent", staff)
    args = {"to": "bob@example.com", "subject": "Launch moved", "body": "Hi Bob"}
    data = {"decision_0": "edit", "message_0": "", **{f"a0__{k}": v for k, v in args.items()}}
    response = login(client, reviewer).post(answer_url(item), data)
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.answer == {
        "decisions": [{"type": "edit", "edited_action": {"name": "send_email", "args": args}}]
    }
    runs.thread_advance(thread_id=item.thread_id)
    assert last_message(item.thread) == (
        "A reviewer edited the email, then it went out. "
        "Email sent to bob@example.com with subject 'Launch moved' (6 characters)."
    )


def test_hitl_reject_and_respond_carry_the_message(client: Client, reviewer: Any) -> None:
    item = ReviewItemFactory(value=hitl_value(allowed=["approve", "reject", "respond"]))
    login(client, reviewer)
    data = {"decision_0": "respond", "message_0": "  Wait until Monday.  "}
    assert client.post(answer_url(item), data).status_code == 302
    item.refresh_from_db()
    assert item.answer == {"decisions": [{"type": "respond", "message": "Wait until Monday."}]}


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"decision_0": "respond", "message_0": "  "}, "message_0", "Write the response to send"),
        ({"decision_0": "edit", "a0__to": ""}, "a0__to", "This field is required."),
        (
            {"decision_0": "approve", "a0__to": "eve@example.com"},
            "decision_0",
            "You changed the arguments of send_email but chose Approve",
        ),
        ({"decision_0": "launch"}, "decision_0", "Select a valid choice."),
        ({}, "decision_0", "Choose a decision for send_email."),
    ],
)
def test_hitl_form_errors_are_shown_and_change_nothing(
    client: Client, reviewer: Any, data: dict[str, str], field: str, error: str
) -> None:
    item = ReviewItemFactory(value=hitl_value(allowed=["approve", "edit", "respond"]))
    response = login(client, reviewer).post(answer_url(item), data)
    html = response.content.decode()
    assert response.status_code == 422
    assert error in html
    assert "Submit answer" in html
    item.refresh_from_db()
    assert (item.status, item.answer) == (ReviewItem.Status.PENDING, None)
    assert answers_recorded(item) == 0


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_second_reviewer_is_told_politely_who_answered_first(
    client: Client, reviewer: Any, other_reviewer: Any, staff: Any, htmx: bool
) -> None:
    item = asked("age", staff)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="42")
    login(client, other_reviewer)
    headers = {**HTMX, "HX-Target": "answer-panel"} if htmx else {}
    response = client.post(answer_url(item), {"mode": "text", "answer": "17"}, headers=headers)
    html = response.content.decode()
    assert response.status_code == 409
    assert re.search(
        r"This item was already answered by rita at \d\d:\d\d:\d\d\. Your answer was not sent\.",
        html,
    )
    assert "Submit answer" not in html
    assert ">Decision</h2>" in html
    item.refresh_from_db()
    assert (item.answer, item.answered_by) == ("42", reviewer)
    assert answers_recorded(item) == 1


def test_answering_a_withdrawn_question_says_so(client: Client, reviewer: Any) -> None:
    item = ReviewItemFactory(status=ReviewItem.Status.SUPERSEDED)
    response = login(client, reviewer).post(answer_url(item), {"mode": "text", "answer": "42"})
    assert response.status_code == 409
    assert "This question was withdrawn by the graph" in response.content.decode()
    item.refresh_from_db()
    assert (item.status, item.answer) == (ReviewItem.Status.SUPERSEDED, None)


# --- CSRF -------------------------------------------------------------------------------------


def test_answer_without_csrf_token_is_forbidden(reviewer: Any, staff: Any) -> None:
    item = asked("age", staff)
    client = login(Client(enforce_csrf_checks=True), reviewer)
    response = client.post(answer_url(item), {"mode": "text", "answer": "42"}, headers=HTMX)
    assert response.status_code == 403
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING
    assert answers_recorded(item) == 0


def test_answer_with_the_pages_htmx_csrf_header_works(reviewer: Any, staff: Any) -> None:
    item = asked("age", staff)
    client = login(Client(enforce_csrf_checks=True), reviewer)
    item_page = client.get(f"/items/{item.pk}/")
    token = json.loads(page(item_page).body["hx-headers"] or "")["X-CSRFToken"]
    assert client.cookies["csrftoken"].value  # the secret the token is checked against
    response = client.post(
        answer_url(item),
        {"mode": "text", "answer": "42"},
        headers={**HTMX, "HX-Target": "answer-panel", "X-CSRFToken": token},
    )
    assert response.status_code == 200
    item.refresh_from_db()
    assert (item.status, item.answer) == (ReviewItem.Status.ANSWERED, "42")


# --- staff pages ------------------------------------------------------------------------------


def test_staff_pages_are_forbidden_to_reviewers(client: Client, reviewer: Any) -> None:
    failed = ThreadFactory(status=Thread.Status.FAILED, error="boom")
    login(client, reviewer)
    assert client.get("/threads/new/").status_code == 403
    response = client.post("/threads/new/", {"graph": "age", "input": "{}"})
    assert response.status_code == 403
    assert client.post(f"/threads/{failed.pk}/retry/").status_code == 403
    assert Thread.objects.count() == 1
    failed.refresh_from_db()
    assert (failed.status, failed.retry_requested) == (Thread.Status.FAILED, False)


def test_staff_starts_a_thread(client: Client, staff: Any) -> None:
    login(client, staff)
    form = client.get("/threads/new/")
    assert form.status_code == 200
    options = re.findall(r'<option value="([^"]+)"', form.content.decode())
    assert {"age", "chatbot", "agent", "parallel_approval"} <= set(options)

    response = client.post("/threads/new/", {"graph": "age", "input": '{"name": "Ada"}'})
    assert response.status_code == 302
    [thread] = Thread.objects.all()
    assert response["Location"] == f"/threads/{thread.pk}/"
    assert (thread.graph, thread.input, thread.started_by) == ("age", {"name": "Ada"}, staff)
    assert thread.status == Thread.Status.QUEUED
    assert AuditEvent.objects.filter(thread=thread, action="thread_started", actor=staff).exists()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"graph": "age", "input": "{name: Ada}"}, "That is not valid JSON"),
        ({"graph": "age", "input": ""}, "This field is required."),
        ({"graph": "nope", "input": "{}"}, "Select a valid choice. nope is not one"),
        ({"graph": "age", "input": '{"name": "' + "A" * 200 + '"}'}, "The input is too large"),
    ],
)
def test_thread_start_errors_are_shown_inline_and_create_nothing(
    client: Client, staff: Any, settings: Any, data: dict[str, str], error: str
) -> None:
    settings.REVIEWDESK_MAX_INPUT_BYTES = 100
    response = login(client, staff).post("/threads/new/", data)
    assert response.status_code == 422
    html = response.content.decode()
    assert error in html
    assert "<h1>Start a thread</h1>" in html
    assert not Thread.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("text", ['{"threshold": NaN}', "1" * 5000], ids=["nan", "5000-digits"])
def test_thread_input_the_desk_cannot_store_is_refused_inline(
    client: Client, staff: Any, text: str
) -> None:
    response = login(client, staff).post("/threads/new/", {"graph": "age", "input": text})
    assert response.status_code == 422
    assert 'role="alert"' in response.content.decode()
    assert not Thread.objects.exists()


def test_the_start_page_shows_examples_and_marks_graphs_without_one(
    client: Client, staff: Any
) -> None:
    html = login(client, staff).get("/threads/new/").content.decode()
    # age comes first and has an example: it is pre-filled.
    assert '<textarea name="input" cols="40" rows="8" required id="id_input">\n{\n  &quot;name' in (
        html
    )
    examples = dict(re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", html, re.DOTALL))
    assert "&quot;name&quot;: &quot;Ada&quot;" in examples["age"]
    for bare in ("slow", "brittle"):  # test graphs without EXAMPLE_INPUT
        assert "No example input" in examples[bare]
        assert "{}" not in examples[bare]


def test_the_start_page_prefills_nothing_for_a_graph_without_an_example(
    client: Client, staff: Any, settings: Any
) -> None:
    registry.graph_specs.cache_clear()
    settings.REVIEWDESK_GRAPHS_PACKAGE = "tests.graphs_without_examples"
    settings.REVIEWDESK_GRAPHS = {}
    try:
        assert registry.graph_specs()["bare"].example_input is None
        response = login(client, staff).get("/threads/new/")
    finally:
        registry.graph_specs.cache_clear()
    html = response.content.decode()
    textarea = re.search(r'<textarea name="input"[^>]*>(.*?)</textarea>', html, re.DOTALL)
    assert textarea is not None
    assert textarea.group(1).strip() == ""


# --- thread pages ---------------------------------------------------------------------------------


def test_thread_page_shows_status_state_and_items(client: Client, staff: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    response = login(client, staff).get(f"/threads/{thread.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert f"<code>{thread.pk}</code>" in html
    assert '<span class="badge thread-status status-interrupted">Interrupted</span>' in html
    assert "waiting for a reviewer." in html
    assert "Next: ask_age" in html
    assert "&quot;name&quot;: &quot;Ada&quot;" in html  # raw state and input
    assert f'<a href="/items/{item.pk}/">{item.pk}</a>' in html
    assert "<td>What is your age?</td>" in html
    assert "Retry the thread" not in html


def test_thread_page_shows_the_conversation(client: Client, staff: Any, reviewer: Any) -> None:
    item = asked("chatbot", staff)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer={"data": "Use it."})
    runs.thread_advance(thread_id=item.thread_id)
    html = login(client, staff).get(f"/threads/{item.thread_id}/").content.decode()
    assert '<span class="badge thread-status status-completed">Completed</span>' in html
    for role in ("user", "assistant", "tool"):
        assert f'<li class="message role-{role}"><span class="role">{role}</span>' in html
    assert "Here is what the expert said: Use it." in html
    assert "<code>{\n  &quot;data&quot;: &quot;Use it.&quot;\n}</code>" in html  # the answer
    assert "<td>rita</td>" in html


def test_thread_page_is_for_staff_and_reviewers_of_its_items(
    client: Client, staff: Any, reviewer: Any, outsider: Any
) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    assert login(client, reviewer).get(f"/threads/{thread.pk}/").status_code == 200
    assert login(client, outsider).get(f"/threads/{thread.pk}/").status_code == 403
    assert login(client, staff).get(f"/threads/{uuid4()}/").status_code == 404


def test_retry_of_a_failed_thread_queues_it_to_ask_again(
    client: Client, staff: Any, reviewer: Any
) -> None:
    thread = start("brittle", {}, staff)
    [item] = pending(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="boom")
    assert runs.thread_advance(thread_id=thread.pk) == "failed"

    login(client, staff)
    html = client.get(f"/threads/{thread.pk}/").content.decode()
    assert "the run failed." in html
    assert "ValueError: the node refused the answer &#x27;boom&#x27;" in html
    assert "Retry the thread" in html

    # Like every action on a thread's history, a retry needs a reason; nothing changes without.
    response = client.post(f"/threads/{thread.pk}/retry/", {"reason": "  "})
    assert response.status_code == 422
    assert b"A reason is required" in response.content
    thread.refresh_from_db()
    assert (thread.status, thread.retry_requested) == (Thread.Status.FAILED, False)

    response = client.post(f"/threads/{thread.pk}/retry/", {"reason": "the node is fixed"})
    assert response.status_code == 302
    assert response["Location"] == f"/threads/{thread.pk}/"
    thread.refresh_from_db()
    assert (thread.status, thread.retry_requested) == (Thread.Status.QUEUED, True)
    retried = AuditEvent.objects.get(thread=thread, action="thread_retried", actor=staff)
    assert retried.data["reason"] == "the node is fixed"

    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    [again] = pending(thread)
    assert thread.status == Thread.Status.INTERRUPTED
    assert again.interrupt_id != item.interrupt_id


def test_retry_refuses_threads_that_have_not_failed(client: Client, staff: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    login(client, staff)
    response = client.post(f"/threads/{thread.pk}/retry/", {"reason": "try again"})
    assert response.status_code == 409
    assert response.content == b"Only failed threads can be retried; this one is interrupted."
    thread.refresh_from_db()
    assert (thread.status, thread.retry_requested) == (Thread.Status.INTERRUPTED, False)
    assert client.post(f"/threads/{uuid4()}/retry/", {"reason": "why"}).status_code == 404


# --- Content-Security-Policy --------------------------------------------------------------------


def test_pages_carry_a_strict_csp_and_no_inline_script(
    client: Client, reviewer: Any, staff: Any
) -> None:
    item = asked("age", staff)
    responses = [client.get("/accounts/login/")]
    login(client, reviewer)
    responses += [client.get("/"), client.get(f"/items/{item.pk}/"), client.get("/threads/new/")]
    for response in responses:
        directives = dict(
            d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";")
        )
        script_src = directives["script-src"].split()
        assert script_src == ["'self'"]
        assert "'unsafe-inline'" not in directives.get("default-src", "")
        assert "'unsafe-eval'" not in response["Content-Security-Policy"]
        if response.status_code == 200:
            assert page(response).inline_scripts == []
            assert all(s.get("src") for s in page(response).scripts)


def test_htmx_requests_without_a_session_are_sent_to_the_login_page(
    client: Client, db: None
) -> None:
    """A resync after the session expired must not swap the login page into the list."""
    response = client.get("/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="queue-items")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/"
    assert response.content == b""
