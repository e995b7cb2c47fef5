"""The pull request comment: markdown from the verdicts of the PR's head, pure.

One section per context, worst first: its state and description, where its baseline came
from, the metric table (metric, base, head, Δ with its interval, Δ %, verdict, raw and
Holm-adjusted p, how it was decided) with a footer giving the status's family-wise level,
links to the run,
its logs and artifacts, and a collapsed reproducibility record. Long tables are collapsed
behind the rows that changed. Everything the pull request controls (job keys, matrix
values, reasons, artifact names) is escaped, so it can neither format nor mention.
The whole stays under the forge's size limit: records, then full tables, then whole
sections give way, and a note says what was left out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..forge.base import MAX_COMMENT_CHARS
from ..forge.outbox import PR_COMMENT_MARKER as MARKER
from .describe import MINUS, number

ICONS = {
    "success": "✅",
    "failure": "❌",
    "error": "⚠️",
    "pending": "⏳",
    "running": "⏳",
}
STATE_ORDER = ("failure", "error", "pending", "running", "success")
COLLAPSE_ROWS = 10  # a longer table shows its changed rows, the rest behind <details>
TRUNCATION_ROOM = 400


@dataclass(frozen=True)
class Section:
    """One context of the pull request's head, as the comment shows it."""

    context: str
    state: str  # success | failure | error | pending | running
    description: str
    run_id: int | None
    run_url: str | None
    details: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # one per job
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (path, url)


def text(value: object) -> str:
    """Plain text, safe anywhere in a markdown table: no formatting, links, HTML, mentions."""
    raw = " ".join(str(value).split())
    escaped = raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", escaped)
    # A zero-width space after the @, as Renovate does: GitHub links no mention then.
    return escaped.replace("@", "@&#8203;")


def code(value: object, *, in_table: bool = False) -> str:
    """An inline code span of a name the pull request chose: no backtick to break out with;
    in a table, `|` escaped (GitHub honours that inside code spans there, and only there)."""
    raw = " ".join(str(value).split()).replace("`", "'")
    return f"`{raw.replace('|', chr(92) + '|') if in_table else raw}`"


def render(head_sha: str, sections: Sequence[Section]) -> str:
    """The whole comment, at most MAX_COMMENT_CHARS characters, starting with MARKER."""
    ordered = sorted(sections, key=lambda s: (_rank(s.state), s.context))
    for detail in ("full", "no-records", "compact"):
        body = _assemble(head_sha, ordered, detail)
        if len(body) <= MAX_COMMENT_CHARS:
            return body
    return _truncated(head_sha, ordered)


def render_section(section: Section) -> str:
    """One context's part of the comment, whole: a check run's summary."""
    return _section(section, "full")


def _rank(state: str) -> int:
    return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)


def _assemble(head_sha: str, sections: Sequence[Section], detail: str) -> str:
    parts = [_header(head_sha, sections)]
    parts.extend(_section(s, detail) for s in sections)
    return "\n\n".join(parts) + "\n"


def _truncated(head_sha: str, sections: Sequence[Section]) -> str:
    header = _header(head_sha, sections)
    budget = MAX_COMMENT_CHARS - len(header) - TRUNCATION_ROOM
    kept: list[str] = []
    used = 0
    for section in sections:
        part = _section(section, "compact")
        if used + len(part) + 2 > budget:
            break
        kept.append(part)
        used += len(part) + 2
    left = len(sections) - len(kept)
    note = (
        f"_This comment is truncated to stay under GitHub's limit of {MAX_COMMENT_CHARS:,} "
        f"characters: {left} more check{'s' if left != 1 else ''} "
        "and the reproducibility records are on the run pages._"
    )
    return "\n\n".join([header, *kept, note]) + "\n"


def _header(head_sha: str, sections: Sequence[Section]) -> str:
    counts: dict[str, int] = {}
    for section in sections:
        counts[section.state] = counts.get(section.state, 0) + 1
    regressions = sum(
        1
        for s in sections
        for m in s.details.get("metrics") or []
        if m.get("verdict") == "regressed" and m.get("gate")
    )
    summary = [f"{n} {state}" for state, n in sorted(counts.items(), key=lambda i: _rank(i[0]))]
    if regressions:
        summary.insert(0, f"**{regressions} gated regression{'s' if regressions > 1 else ''}**")
    # No timestamp: an unchanged comment renders the same, and is not sent again.
    return f"{MARKER}\n### labci results for `{head_sha[:7]}`\n\n{' · '.join(summary) or 'no checks yet'}"


def _section(section: Section, detail: str) -> str:
    icon = ICONS.get(section.state, "•")
    lines = [f"#### {icon} {code(section.context)} — {section.state}"]
    lines.append(text(section.description))
    baseline = _baseline_line(section.details)
    if baseline:
        lines.append(baseline)
    rows = section.details.get("metrics") or []
    if rows:
        lines.append(_table(rows, collapse=detail != "full"))
        footer = decision_footer(section.details)
        if footer:
            lines.append(f"_{text(footer)}_")
    links = _links(section)
    if links:
        lines.append(links)
    if detail == "full" and section.records:
        lines.append(_records(section.records))
    return "\n\n".join(lines)


def _baseline_line(details: dict[str, Any]) -> str | None:
    found = details.get("baseline")
    if found:
        commit = str(found.get("commit") or "")[:7]
        where = f"{text(found.get('source', 'baseline'))} `{commit}`"
        run = found.get("run_id")
        hardware = text(found.get("hardware") or "")
        same = found.get("same_hardware")
        flag = f"same hardware ({hardware})" if same else f"⚠️ **other hardware**: {hardware}"
        if not same and details.get("hardware"):
            flag += f"; this run: {text(details['hardware'])}"
        return f"Baseline: {where} (run #{run}) · {flag}"
    why = details.get("no_baseline")
    return f"No baseline: {text(why)}" if why else None


METRIC_HEADERS = (
    "metric",
    "base",
    "head",
    "Δ [interval]",
    "Δ %",
    "verdict",
    "p (adjusted)",
    "decided by",
)
TABLE_HEAD = "| " + " | ".join(METRIC_HEADERS) + " |\n" + "|" + "---|" * len(METRIC_HEADERS)


def _table(rows: list[dict[str, Any]], *, collapse: bool) -> str:
    head = TABLE_HEAD
    lines = [_row(r) for r in rows]
    changed = [
        line
        for line, r in zip(lines, rows, strict=True)
        if r["verdict"] not in ("unchanged", "info")
    ]
    if len(rows) <= COLLAPSE_ROWS:
        return head + "\n" + "\n".join(lines)
    shown = head + "\n" + "\n".join(changed) if changed else "_No metric changed._"
    full = head + "\n" + "\n".join(lines)
    if collapse:
        return f"{shown}\n\n_{len(rows) - len(changed)} unchanged metrics are on the run page._"
    return f"{shown}\n\n<details><summary>All {len(rows)} metrics</summary>\n\n{full}\n\n</details>"


VERDICT_NOTES = {
    "inconclusive": "inconclusive (no evidence either way)",
    "unverified": "unverified (not gated)",
}


def metric_cells(row: dict[str, Any], *, markdown: bool = False) -> list[str]:
    """A metric row's cells: metric, base, head, Δ [interval], Δ %, verdict, p (adjusted),
    how it was decided; plain text, or `markdown` (the name as code, a change that counts
    in bold)."""
    goal = {"max": " ↑", "min": " ↓"}.get(row.get("goal") or "", "")
    gate = "" if row.get("gate") or row.get("goal") is None else " (not gated)"
    name = code(row["name"], in_table=True) if markdown else str(row["name"])
    verdict = row["verdict"]
    shown = VERDICT_NOTES.get(verdict, verdict)
    if markdown and verdict in ("regressed", "improved"):
        shown = f"**{verdict}**"
    explanation = str(row.get("explanation") or "")
    return [
        f"{name}{goal}{gate}",
        _side(row.get("base")),
        _side(row.get("head")),
        _delta(row),
        _percent(row.get("delta_pct")),
        shown,
        _p_cell(row),
        text(explanation) if markdown else explanation,
    ]


def decision_footer(details: dict[str, Any]) -> str | None:
    """How the status as a whole was decided, in plain sentences: its family-wise level."""
    decision = details.get("decision")
    if not decision:
        return None
    alpha = float(decision.get("alpha") or 0.05)
    family = int(decision.get("family") or 0)
    parts = [
        "One-sided tests in each metric's goal direction with the tolerance as the margin; "
        f"{100 - 200 * alpha:g} % intervals."
    ]
    if family:
        metrics = f"{family} gated metric{'s' if family != 1 else ''}"
        parts.append(
            f"This status fails for noise at most {alpha * 100:g} % of the time: p-values "
            f"are Holm-adjusted across its {metrics}."
        )
    unverified = int(decision.get("unverified") or 0)
    if unverified:
        are = "s are" if unverified != 1 else " is"
        parts.append(
            f"{unverified} gated metric{are} unverified (no noise estimate) and cannot fail it."
        )
    looks = decision.get("looks")
    if looks:
        parts.append(str(looks))
    return " ".join(parts)


def _row(row: dict[str, Any]) -> str:
    return "| " + " | ".join(metric_cells(row, markdown=True)) + " |"


def _side(side: dict[str, Any] | None) -> str:
    if side is None:
        return "—"
    value = number(side["mean"])
    if side["n"] > 1:
        value += f" ± {number(side['std'])} (n={side['n']})"
    return value


def _delta(row: dict[str, Any]) -> str:
    if row.get("delta") is None:
        return "—"
    value = number(row["delta"], signed=True)
    interval = row.get("interval") or row.get("ci95")  # ci95: verdicts stored earlier
    if interval:
        value += f" [{number(interval[0])}, {number(interval[1])}]"
    return value


def _percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:+.2f} %".replace("-", MINUS)


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _p_cell(row: dict[str, Any]) -> str:
    raw, adjusted = row.get("p_value"), row.get("p_adjusted")
    if raw is None or adjusted is None or _p(adjusted) == _p(raw):
        return _p(raw)
    return f"{_p(raw)} ({_p(adjusted)})"


def _links(section: Section) -> str:
    parts: list[str] = []
    if section.run_url:
        parts.append(f"[run #{section.run_id}]({section.run_url})")
        for job in section.details.get("jobs") or []:
            parts.append(f"[logs of {text(job['key'])}]({section.run_url}#job-{job['id']})")
    for path, url in section.artifacts[:20]:
        parts.append(f"[{text(path)}]({url})")
    if len(section.artifacts) > 20:
        parts.append(f"{len(section.artifacts) - 20} more artifacts on the run page")
    return " · ".join(parts)


RECORD_COLUMNS = (
    ("job", lambda r: r.get("job")),
    ("commit", lambda r: str(r.get("commit") or "")[:12]),
    ("workflow file", lambda r: f"sha256 {str(r.get('workflow_sha256') or '')[:12]}"),
    ("image", lambda r: r.get("image_digest") or r.get("image") or r.get("executor")),
    ("runner", lambda r: f"{r.get('runner') or ''} ({', '.join(r.get('runner_labels') or [])})"),
    (
        "GPU",
        lambda r: (
            ", ".join(str(g.get("model")) for g in r.get("gpus") or [] if isinstance(g, dict))
            or "none"
        ),
    ),
    (
        "driver / CUDA",
        lambda r: f"{r.get('driver_version') or '—'} / {r.get('cuda_version') or '—'}",
    ),
    ("matrix (seeds)", lambda r: ", ".join(f"{k}={v}" for k, v in (r.get("matrix") or {}).items())),
    ("started", lambda r: _when(r.get("started_at"))),
    ("finished", lambda r: _when(r.get("finished_at"))),
)


def _records(records: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(name for name, _ in RECORD_COLUMNS) + " |"
    rule = "|" + "---|" * len(RECORD_COLUMNS)
    rows = [
        "| " + " | ".join(text(get(record) or "—") for _, get in RECORD_COLUMNS) + " |"
        for record in records
    ]
    table = "\n".join([head, rule, *rows])
    return f"<details><summary>Reproducibility record</summary>\n\n{table}\n\n</details>"


def _when(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def artifact_url(site: str, job_id: int, path: str) -> str:
    return f"{site}/api/v1/jobs/{job_id}/artifacts/{quote(path)}"
