"""JSON the fake server answers for a session: SessionResponse and SessionInsights.

`as_of` renders a session as a lagging list index saw it at that (earlier) server time: status,
tags and updated_at of then. The structured output appears once the session has finished.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

from ._lifecycle import ACUS_PER_WORKING_SECOND
from ._records import UNSET, SessionRecord

OutputGenerator = Callable[[dict[str, Any]], Any]
INSIGHTS_AFTER = 5.0
"""Server seconds from `insights/generate` to a ready analysis."""
_SIZES = ((0.5, "xs"), (2.0, "s"), (5.0, "m"), (10.0, "l"))
_CATEGORY_WORDS = (("test", "unit_test_generation"), ("fix", "bug_fixing"),
                   ("bug", "bug_fixing"), ("doc", "documentation_and_content"),
                   ("refactor", "refactoring_and_optimization"),
                   ("migrat", "migrations_and_upgrades"))


def _copy(value: Any) -> Any:
    return None if value is None else copy.deepcopy(value)


def structured_output(record: SessionRecord, now: float,
                      generator: OutputGenerator | None) -> Any:
    """The session's structured output at `now`: a stored one, or the revealed one, or None."""
    stored = record.fields["structured_output"]
    if stored is not None:
        return _copy(stored)
    if not record.finished_by(now):
        return None
    if record.output is UNSET:
        if generator is None or record.output_schema is None:
            return None
        record.output = generator(copy.deepcopy(record.output_schema))
    return _copy(record.output)


def render_session(record: SessionRecord, org_id: str, now: float, *, full: bool,
                   as_of: bool = False, generator: OutputGenerator | None = None,
                   ) -> dict[str, Any]:
    """SessionResponse JSON; `full` (get/list) fills status_detail and structured_output."""
    status, detail = record.timeline.state(now)
    fields = record.fields
    acus = fields["acus_consumed"]
    if acus is None:
        acus = round(record.timeline.working_seconds(now) * ACUS_PER_WORKING_SECOND, 3)
    hex_id = record.session_id.removeprefix("devin-")
    return {
        "session_id": record.session_id,
        "url": f"https://app.devin.ai/sessions/{hex_id}",
        "status": status,
        "status_detail": detail if full else None,
        "tags": list(record.tags_at(now) if as_of else record.tags),
        "org_id": org_id,
        "created_at": int(record.created),
        "updated_at": record.updated_at(now, as_of=as_of),
        "acus_consumed": acus,
        "pull_requests": [dict(pr) for pr in fields["pull_requests"]],
        "title": fields["title"],
        "user_id": fields["user_id"],
        "service_user_id": fields["service_user_id"],
        "playbook_id": fields["playbook_id"],
        "parent_session_id": fields["parent_session_id"],
        "child_session_ids": _copy(fields["child_session_ids"]),
        "is_archived": fields["is_archived"],
        "is_advanced": fields["is_advanced"],
        "structured_output": structured_output(record, now, generator) if full else None,
        "origin": fields["origin"],
        "category": fields["category"] if full else None,
        "subcategory": fields["subcategory"] if full else None,
    }


def render_insights(session: dict[str, Any], record: SessionRecord, now: float) -> dict[str, Any]:
    """SessionInsights JSON: `session` (rendered) plus counts, size class and analysis."""
    shown = [m for m in record.messages if m.at <= now]
    devin = sum(1 for m in shown if m.source == "devin")
    size = next((name for bound, name in _SIZES if session["acus_consumed"] < bound), "xl")
    ready = record.insights_at is not None and now >= record.insights_at + INSIGHTS_AFTER
    return {**session, "num_devin_messages": devin, "num_user_messages": len(shown) - devin,
            "session_size": size, "analysis": analysis(record) if ready else None}


def analysis(record: SessionRecord) -> dict[str, Any]:
    """A deterministic SessionInsightsAnalysis for the session (same session, same analysis)."""
    prompt = str(record.create_body.get("prompt") or "")
    lowered = prompt.lower()
    category = next((c for word, c in _CATEGORY_WORDS if word in lowered), "feature_development")
    digest = hashlib.sha256(record.session_id.encode()).digest()
    confidence = round(0.6 + digest[0] / 255 * 0.39, 2)
    return {
        "classification": {"category": category, "confidence": confidence,
                           "programming_languages": ["python"],
                           "tools_and_frameworks": ["pytest"]},
        "issues": [{"id": "issue-1", "impact": "low", "issue": "The prompt named no test command",
                    "label": "prompt"}],
        "action_items": [{"action_item": "Say how to run the tests in the prompt",
                          "issue_id": "issue-1", "type": "prompt_improvement"}],
        "suggested_prompt": {"original_prompt": prompt,
                             "suggested_prompt": f"{prompt} Run `pytest -q` before finishing.",
                             "feedback_items": []},
        "timeline": [{"title": "Started", "description": "Devin read the task", "color": None,
                      "issue_id": None},
                     {"title": "Worked", "description": "Devin changed and tested the code",
                      "color": "green", "issue_id": None}],
        "note_usage": None,
    }
