"""Two reviewers approve a draft in parallel; it is published only if both approve.

Legal and brand each get a question at the same time, so one thread has two pending. Answer
each with `{"approved": true, "comment": "..."}` (or true/false, "yes"/"no", "approve"/"reject").
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Annotated, Any, NotRequired

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict

EXAMPLE_INPUT: dict[str, Any] = {"topic": "our Friday product launch"}

# How reviewdesk answers the reviews (read by the desk; the interrupt() calls stay as they are):
# a yes/no with an optional comment, so reviewers get Approve / Reject buttons.
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean", "description": "Publish this draft?"},
        "comment": {"type": "string", "description": "Anything the team should know."},
    },
    "required": ["approved"],
}
REVIEW_FORMS: dict[str, dict[str, Any]] = {
    "legal_review": {"schema": APPROVAL_SCHEMA},
    "brand_review": {"schema": APPROVAL_SCHEMA},
}

_YES = frozenset({"yes", "y", "approve", "approved", "true", "ok"})
_NO = frozenset({"no", "n", "reject", "rejected", "false"})


class State(TypedDict):
    topic: NotRequired[str]
    draft: NotRequired[str]
    reviews: Annotated[list[dict[str, Any]], operator.add]
    published: Annotated[list[dict[str, Any]], operator.add]
    status: NotRequired[str]
    rejected_by: NotRequired[list[str]]


def parse_decision(answer: Any) -> dict[str, Any] | None:
    """Read an approval leniently; None means the answer is neither yes nor no."""
    if isinstance(answer, bool):
        return {"approved": answer, "comment": ""}
    if isinstance(answer, str):
        word = answer.strip().lower()
        if word in _YES:
            return {"approved": True, "comment": ""}
        if word in _NO:
            return {"approved": False, "comment": ""}
        return None
    if isinstance(answer, dict):
        decision = parse_decision(answer.get("approved"))
        if decision is None:
            return None
        comment = answer.get("comment")
        return {**decision, "comment": "" if comment is None else str(comment)}
    return None


def _shown(answer: Any) -> str:
    """Quote an answer briefly, so a pasted essay does not swamp the next question."""
    text = repr(answer)
    return text if len(text) <= 40 else f"{text[:37]}..."


def draft(state: State) -> dict[str, str]:
    """Write the draft both reviewers will see."""
    topic = state.get("topic") or "our news"
    return {
        "draft": f"Announcing {topic}! Join us to see what the team has built. Details to follow."
    }


def _review_node(role: str) -> Callable[[State], dict[str, list[dict[str, Any]]]]:
    """Build one reviewer's node; everything before interrupt() only reads state, so re-runs are
    harmless (a sibling's resume re-runs this node too)."""

    def review(state: State) -> dict[str, list[dict[str, Any]]]:
        question = f"Approve this draft for {role}?"
        request = {"question": question, "draft": state["draft"], "reviewer_role": role}
        answer = interrupt(request)
        # Ask again in the same node (a new interrupt id) rather than fail: a node that raises
        # after interrupt() keeps the bad answer and ignores later ones.
        while (decision := parse_decision(answer)) is None:
            retry = f"{_shown(answer)} is not a yes or no. {question}"
            answer = interrupt({**request, "question": retry})
        return {"reviews": [{"reviewer_role": role, **decision}]}

    review.__name__ = f"{role}_review"
    return review


def publish(state: State) -> dict[str, Any]:
    """Runs once both reviews are in: publish on two approvals, otherwise record who refused."""
    reviews = state.get("reviews", [])
    rejected_by = [r["reviewer_role"] for r in reviews if not r["approved"]]
    if rejected_by:
        return {"status": "rejected", "rejected_by": rejected_by}
    entry = {
        "draft": state["draft"],
        "approved_by": [r["reviewer_role"] for r in reviews],
        "comments": {r["reviewer_role"]: r["comment"] for r in reviews if r["comment"]},
    }
    return {"status": "published", "published": [entry]}


graph = StateGraph(State)
graph.add_node("draft", draft)
graph.add_node("legal_review", _review_node("legal"))
graph.add_node("brand_review", _review_node("brand"))
graph.add_node("publish", publish)
graph.add_edge(START, "draft")
graph.add_edge("draft", "legal_review")
graph.add_edge("draft", "brand_review")
# One edge from both reviews: publish waits for both and runs once, not once per branch.
graph.add_edge(["legal_review", "brand_review"], "publish")
graph.add_edge("publish", END)
