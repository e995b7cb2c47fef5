"""GitHub's check runs, as labci writes them: what may be sent, the summary within GitHub's
limit, and whether an existing check run already reads so or must be replaced."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ForgeRejected
from .base import CheckRunMessage

MAX_CHECK_SUMMARY_CHARS = 65_535  # GitHub's `output.summary` limit
CHECK_STATUSES = ("queued", "in_progress", "completed")
CHECK_CONCLUSIONS = (
    "success",
    "failure",
    "neutral",
    "cancelled",
    "timed_out",
    "action_required",
    "skipped",
)


def check_check_run(message: CheckRunMessage) -> None:
    """Raise `ForgeRejected(status=422)` for a check run GitHub would refuse or misread."""
    where = f"check run {message.name!r} on {message.head_sha[:7]}"
    if not message.name.strip():
        raise ForgeRejected(f"{where}: the name is blank", status=422)
    if message.status not in CHECK_STATUSES:
        raise ForgeRejected(
            f"{where}: status {message.status!r} is not one of {', '.join(CHECK_STATUSES)}",
            status=422,
        )
    if message.conclusion is not None and message.conclusion not in CHECK_CONCLUSIONS:
        raise ForgeRejected(
            f"{where}: conclusion {message.conclusion!r} is not one of "
            f"{', '.join(CHECK_CONCLUSIONS)}",
            status=422,
        )
    if (message.status == "completed") != (message.conclusion is not None):
        raise ForgeRejected(
            f"{where}: a conclusion goes with status 'completed', and only with it "
            f"(status {message.status!r}, conclusion {message.conclusion!r})",
            status=422,
        )


def fit_summary(summary: str) -> str:
    """`summary` within GitHub's limit: cut at a line break when one is near, with a note."""
    if len(summary) <= MAX_CHECK_SUMMARY_CHARS:
        return summary
    note = (
        f"\n\n*… truncated: the summary was {len(summary):,} characters, over GitHub's "
        f"limit of {MAX_CHECK_SUMMARY_CHARS:,}.*"
    )
    room = MAX_CHECK_SUMMARY_CHARS - len(note)
    cut = summary.rfind("\n", room // 2, room)
    return summary[: cut if cut >= 0 else room] + note


def check_run_data(message: CheckRunMessage, summary: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": message.name,
        "external_id": message.external_id,
        "status": message.status,
        "output": {"title": message.title, "summary": summary},
    }
    if message.conclusion is not None:
        data["conclusion"] = message.conclusion
    if message.details_url:  # without one, GitHub shows the App's homepage
        data["details_url"] = message.details_url
    return data


def reads_same(found: Mapping[str, Any], message: CheckRunMessage, summary: str) -> bool:
    output = found.get("output") or {}
    return (
        found.get("status") == message.status
        and found.get("conclusion") == message.conclusion
        and output.get("title") == message.title
        and output.get("summary") == summary
        and (not message.details_url or found.get("details_url") == message.details_url)
    )


def settled(found: Mapping[str, Any], message: CheckRunMessage) -> bool:
    """Whether `found` is completed and the message would change its status or conclusion,
    which GitHub does not do to a completed check run: a new one is created instead."""
    return found.get("status") == "completed" and (
        message.status != "completed" or found.get("conclusion") != message.conclusion
    )
