"""The pull request comment as GitHub will render it: parsed with a CommonMark parser with
GFM tables, so a broken table, a stray mention or a live link shows up as structure."""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt

from labci_server.forge.base import MAX_COMMENT_CHARS
from labci_server.forge.outbox import PR_COMMENT_MARKER
from labci_server.results.comment_render import COLLAPSE_ROWS, Section, render, text
from labci_server.results.compare import compare_metrics
from labci_server.results.verdict import metric_row
from labci_spec import Compare

HEAD = "0123456789abcdef0123456789abcdef01234567"
MD = MarkdownIt("commonmark").enable("table")


def rule(goal: str = "max", tolerance: float | str = 0.01, gate: bool = True) -> Compare:
    return Compare.model_validate({"goal": goal, "tolerance": tolerance, "gate": gate})


def rows(base: dict[str, list[float]], head: dict[str, list[float]], rules) -> list[dict]:
    return [metric_row(r) for r in compare_metrics(base, head, rules)]


def section(context: str = "labci/train/mnist", state: str = "success", **kw: Any) -> Section:
    values: dict[str, Any] = {
        "description": "acc 0.9 (+0.01)",
        "run_id": 7,
        "run_url": "http://labci.test/runs/7",
        "details": {},
    }
    return Section(context, state, **(values | kw))


def tables(markdown: str) -> list[list[list[str]]]:
    """Every table's rows as lists of cell texts (the header row first)."""
    found: list[list[list[str]]] = []
    row: list[str] | None = None
    tokens = MD.parse(markdown)
    for i, token in enumerate(tokens):
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close":
            found[-1].append(row or [])
        elif token.type == "inline" and i and tokens[i - 1].type in ("th_open", "td_open"):
            assert row is not None
            row.append(plain(token))
    return found


def plain(inline) -> str:
    """An inline token's text as a reader sees it (code spans included, markup dropped)."""
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "html_inline":
            parts.append(f"<html:{child.content}>")
    return "".join(parts)


def links(markdown: str) -> list[str]:
    return [
        child.attrs["href"]
        for token in MD.parse(markdown)
        if token.type == "inline"
        for child in token.children or []
        if child.type == "link_open"
    ]


def test_regressions_come_first_with_base_head_delta_and_p_value() -> None:
    regressed = section(
        "labci/train/seeds",
        "failure",
        description="acc 0.8 (−0.05) · 1 regression · mean of 3",
        details={
            "metrics": rows(
                {"acc": [0.85, 0.86, 0.84], "loss": [0.3, 0.301, 0.299]},
                {"acc": [0.80, 0.81, 0.79], "loss": [0.3, 0.301, 0.299]},
                {"acc": rule(), "loss": rule("min")},
            ),
            "decision": {"alpha": 0.05, "family": 2, "unverified": 0},
            "baseline": {
                "run_id": 3,
                "commit": "fedcba9876543210",
                "source": "base commit",
                "same_hardware": True,
                "hardware": "cpu",
            },
        },
    )
    body = render(HEAD, [section("labci/eval/cpu"), regressed])
    assert body.startswith(PR_COMMENT_MARKER + "\n")
    assert "**1 gated regression**" in body
    assert body.index("labci/train/seeds") < body.index("labci/eval/cpu")
    (table,) = tables(body)
    assert table[0] == [
        "metric", "base", "head", "Δ [interval]", "Δ %", "verdict", "p (adjusted)", "decided by"
    ]  # fmt: skip
    acc = table[1]
    assert acc[0] == "acc ↑"
    assert acc[1] == "0.85 ± 0.01 (n=3)"
    assert acc[2] == "0.8 ± 0.01 (n=3)"
    assert acc[3].startswith("\u22120.05 [")  # the difference and its 90 % interval
    assert acc[4] == "\u22125.88 %"
    assert acc[5] == "regressed"
    found = regressed.details["metrics"][0]
    assert acc[6] == f"{found['p_value']:.3f} ({found['p_adjusted']:.3f})"  # raw, Holm over 2
    assert acc[7].startswith("Welch's t-test, n = 3 vs 3; worse by more than the tolerance 0.01")
    assert "Holm-adjusted over 2 gated metrics" in acc[7]
    assert table[2][5] == "unchanged"
    assert "equivalent within ±0.01 (TOST)" in table[2][7]
    assert "Holm-adjusted across its 2 gated metrics" in body
    assert "fails for noise at most 5 % of the time" in body
    assert "Baseline: base commit `fedcba9` (run #3) · same hardware (cpu)" in body
    assert "http://labci.test/runs/7" in links(body)


def test_text_from_the_pull_request_cannot_format_mention_or_break_the_table() -> None:
    hostile = "a|b @octocat <img src=x> [x](http://evil) **bold** `tick`"
    details = {
        "metrics": rows({hostile: [1.0]}, {hostile: [2.0]}, {}),
        "no_baseline": hostile,
        "jobs": [{"key": hostile, "id": 4}],
    }
    body = render(HEAD, [section(f"labci/{hostile}", details=details, description=hostile)])
    (table,) = tables(body)
    assert all(len(row) == 8 for row in table)  # the `|` did not add a column
    assert table[1][0] == "a|b @octocat <img src=x> [x](http://evil) **bold** 'tick'"
    assert links(body) == ["http://labci.test/runs/7", "http://labci.test/runs/7#job-4"]
    inline = [c for t in MD.parse(body) if t.type == "inline" for c in t.children or []]
    assert not [c for c in inline if c.type == "html_inline" and "img" in c.content]
    assert not [c for c in inline if c.type == "strong_open"]
    # Outside code spans (where GitHub links no mention) a zero-width space follows the @.
    assert not [c for c in inline if c.type == "text" and "@octocat" in c.content]
    assert "@&#8203;octocat" in text(hostile)
    assert f"#### ✅ `labci/{hostile.replace('`', chr(39))}` — success" in body


def test_a_long_table_shows_what_changed_and_collapses_the_rest() -> None:
    names = [f"m{i:02d}" for i in range(COLLAPSE_ROWS + 5)]
    base = {name: [0.5, 0.501, 0.499] for name in names}
    head = {name: [0.5, 0.501, 0.499] for name in names} | {"m03": [0.2, 0.201, 0.199]}
    body = render(
        HEAD,
        [section(details={"metrics": rows(base, head, dict.fromkeys(names, rule()))})],
    )
    shown, full = tables(body)
    assert [row[0] for row in shown[1:]] == ["m03 ↑"]
    assert len(full) == 1 + len(names)
    assert f"<details><summary>All {len(names)} metrics</summary>" in body


def test_an_oversized_comment_is_truncated_with_a_note() -> None:
    names = [f"metric_{i:04d}" for i in range(40)]
    many = [
        section(
            f"labci/sweep/lr-{i:03d}",
            "failure",
            details={
                "metrics": rows(
                    {n: [0.9, 0.91, 0.89] for n in names},
                    {n: [0.5, 0.51, 0.49] for n in names},
                    dict.fromkeys(names, rule()),
                )
            },
            records=[{"job": f"lr-{i}", "commit": HEAD, "runner": "gpu-1"}],
        )
        for i in range(60)
    ]
    body = render(HEAD, many)
    assert len(body) <= MAX_COMMENT_CHARS
    assert body.startswith(PR_COMMENT_MARKER)
    assert "This comment is truncated to stay under GitHub's limit of 65,536 characters" in body
    kept = body.count("#### ")
    assert 0 < kept < 60
    assert f"{60 - kept} more checks" in body


def test_reproducibility_record_is_collapsed_under_its_section() -> None:
    record = {
        "job": "train (seed=1)",
        "commit": HEAD,
        "workflow_sha256": "ab" * 32,
        "image_digest": "sha256:" + "c" * 64,
        "runner": "gpu-box",
        "runner_labels": ["gpu", "a100"],
        "gpus": [{"model": "NVIDIA A100-SXM4-40GB"}],
        "driver_version": "550.54",
        "cuda_version": "12.4",
        "matrix": {"seed": 1},
        "started_at": 0,
        "finished_at": 60,
    }
    body = render(HEAD, [section(records=[record])])
    assert "<details><summary>Reproducibility record</summary>" in body
    (table,) = tables(body)
    header, row = table
    assert header[:4] == ["job", "commit", "workflow file", "image"]
    assert row[1] == HEAD[:12]
    assert row[2] == "sha256 " + "ab" * 6
    assert row[5] == "NVIDIA A100-SXM4-40GB"
    assert row[6] == "550.54 / 12.4"
    assert row[7] == "seed=1"
    assert row[8] == "1970-01-01 00:00:00 UTC"


def test_the_same_results_render_the_same_body() -> None:
    """No timestamp: an unchanged comment is not sent again."""
    details = {"metrics": rows({"acc": [0.9]}, {"acc": [0.91]}, {"acc": rule()})}
    assert render(HEAD, [section(details=details)]) == render(HEAD, [section(details=details)])
