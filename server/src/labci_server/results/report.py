"""What a job's outcome looks like on the forge: state and a ≤ 140-character description."""

from __future__ import annotations

from ..forge.outbox import clip_description

STATE_FOR_OUTCOME = {
    "success": "success",
    "failure": "failure",
    "error": "error",
    "cancelled": "error",  # GitHub has no "cancelled" status state
    "timed_out": "error",
}


def format_value(value: float) -> str:
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


def metrics_summary(metrics: dict[str, float]) -> str:
    return " · ".join(f"{name} {format_value(value)}" for name, value in sorted(metrics.items()))


def describe_outcome(
    outcome: str, *, reason: str | None, metrics: dict[str, float], duration_s: float | None
) -> tuple[str, str]:
    """(status state, description) for a finished job."""
    state = STATE_FOR_OUTCOME.get(outcome, "error")
    summary = metrics_summary(metrics)
    if outcome == "success":
        took = f"passed in {duration_s:.0f}s" if duration_s is not None else "passed"
        text = summary or took
    elif outcome == "cancelled":
        text = f"cancelled: {reason}" if reason else "cancelled"
    elif outcome == "timed_out":
        text = reason or "timed out"
    else:
        text = reason or outcome
        if summary:
            text = f"{text} · {summary}"
    return state, clip_description(text)
