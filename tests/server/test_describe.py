"""The commit status description: what a reviewer reads first, in at most 140 characters
(reliability C5: whatever the metric names and values, GitHub never sees more)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labci_server.forge.outbox import clip_description
from labci_server.results.compare import compare_metrics
from labci_server.results.describe import compose, number
from labci_spec import Compare

MAX = 140


def rule(goal: str = "max", tolerance: float | str = 0.01, gate: bool = True) -> Compare:
    return Compare.model_validate({"goal": goal, "tolerance": tolerance, "gate": gate})


@pytest.mark.parametrize(
    ("value", "signed", "shown"),
    [
        (0.912, False, "0.912"),
        (0.00412, True, "+0.00412"),
        (-0.0104, True, "\u22120.0104"),
        (0.0, True, "±0"),
        (3.0, False, "3"),
        (123456.789, False, "1.235e+05"),
        (math.nan, False, "nan"),
        (-math.inf, True, "\u2212inf"),
    ],
)
def test_numbers_have_four_significant_digits_and_a_real_minus(value, signed, shown) -> None:
    assert number(value, signed=signed) == shown


def test_the_description_leads_with_the_regressions_and_counts_them() -> None:
    results = compare_metrics(
        {"acc": [0.95, 0.951, 0.949], "loss": [0.231, 0.232, 0.23]},
        {"acc": [0.90, 0.901, 0.899], "loss": [0.221, 0.222, 0.22]},
        {"acc": rule(), "loss": rule("min")},
    )
    assert compose(results) == (
        "acc 0.9 (\u22120.05) · loss 0.221 (\u22120.01) · 1 regression · mean of 3"
    )


def test_a_missing_metric_and_a_note_are_said() -> None:
    same = [0.9, 0.901, 0.899]
    results = compare_metrics({"acc": same, "f1": [0.8]}, {"acc": same}, {"acc": rule()})
    assert compose(results, "baseline on other hardware") == (
        "f1 missing · acc 0.9 (±0) · mean of 3 · baseline on other hardware"
    )


def test_without_a_baseline_nothing_is_called_new() -> None:
    results = compare_metrics({}, {"acc": [0.9]}, {"acc": rule()})
    assert compose(results, "no baseline", compared=False) == "acc 0.9 · no baseline"
    assert compose(results, "no baseline") == "acc 0.9 (new) · no baseline"


def test_metrics_that_do_not_fit_are_counted_and_the_tail_is_kept() -> None:
    names = [f"validation/accuracy_of_class_{i:02d}" for i in range(12)]
    base = {name: [0.5, 0.51, 0.49] for name in names}
    head = {name: [0.4, 0.41, 0.39] for name in names}
    results = compare_metrics(base, head, dict.fromkeys(names, rule()))
    text = compose(results, "baseline on other hardware")
    assert len(text) <= MAX
    assert text.endswith("· 12 regressions · mean of 3 · baseline on other hardware")
    shown = text.count("validation/accuracy_of_class_")
    assert 0 < shown < 12
    assert f"+{12 - shown} more" in text
    assert "…" not in text  # counted, not cut mid-word


def test_no_metrics_at_all() -> None:
    assert compose([]) == "no metrics"


printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # lone surrogates are not text
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(
    metrics=st.dictionaries(
        printable.filter(lambda s: s.strip()),
        st.tuples(
            st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
            st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
        ),
        max_size=8,
    ),
    note=st.one_of(st.none(), printable),
    compared=st.booleans(),
)
def test_any_metrics_and_note_fit_in_140_characters(metrics, note, compared) -> None:
    """Unicode, RTL, emoji, huge numbers, NaN: the description is never over the limit."""
    base = {name: pair[0] for name, pair in metrics.items()}
    head = {name: pair[1] for name, pair in metrics.items()}
    rules = dict.fromkeys(list(metrics)[::2], rule())
    text = compose(compare_metrics(base, head, rules), note, compared=compared)
    assert 0 < len(text) <= MAX
    assert "\n" not in text


@settings(max_examples=300, deadline=None)
@given(printable)
def test_any_text_is_clipped_to_140_characters(text) -> None:
    clipped = clip_description(text)
    assert len(clipped) <= MAX
    assert clipped == " ".join(text.split()) or clipped.endswith("…")


@pytest.mark.parametrize(
    "text",
    ["🧪" * 200, "שלום עולם " * 30, "👩‍🔬" * 80, "a\u0301" * 200, "x" * 141],
    ids=["emoji", "rtl", "zwj-emoji", "combining", "one-over"],
)
def test_long_unicode_is_clipped(text) -> None:
    clipped = clip_description(text)
    assert len(clipped) == MAX
    assert clipped.endswith("…")
