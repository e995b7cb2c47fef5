"""Judge one job's metrics against its baseline, per metric, so that a status fails for a
real regression and (almost) never for noise.

Pure: values in, `MetricResult`s out; finding the baseline and the history is the caller's
job. Distributions come from SciPy, never from hand-written formulas.

How a metric is judged:
- Non-finite values (NaN, ±inf) are dropped from a side. A side given no values is absent;
  a side given values of which none is finite makes the metric `invalid`. Absent in head →
  `missing` (also when absent in both); absent in base → `new`. No `compare` rule → `info`:
  shown with its statistics, never judged, never gating.
- **Noise.** With n ≥ 2 on both sides: Welch's t-test (Welch-Satterthwaite degrees of
  freedom). Otherwise the per-run variance is pooled from whatever measured it: a side with
  n ≥ 2, the spread of earlier single-run results on the base branch, and the spreads of
  earlier results with repeats (`history`). A metric with a `test-size` has a binomial floor
  under its variance, p(1 − p)/N per run; a variance at the floor counts as known. A
  comparison with no noise estimate at all (one value per side and no history, or values
  identical on every run without a floor) is `unverified`: shown, never gated, with what
  would make it verifiable.
- **Tests**, in units where a positive change is better (the goal's direction), with the
  tolerance m as a margin in the hypothesis: `regressed` when "worse by more than m" is
  significant (one-sided, H0: change ≥ −m); `improved` when "better by more than m" is;
  `unchanged` only when equivalence within ±m is shown (TOST: both one-sided tests at alpha,
  i.e. the 1 − 2·alpha interval lies inside ±m); else `inconclusive`, no evidence either way.
  A tolerance of 0 can never show equivalence: such a metric is `inconclusive` unless it
  moved significantly.
- **Many metrics.** The regression tests of the gated metrics of one status are one family:
  their p-values are adjusted with Holm's method, so the status fails for nothing with
  probability ≤ alpha however many metrics it gates. The improvement tests of the same
  metrics are adjusted the same way; metrics with `gate: false` keep their raw p-values.
- Each result carries a one-line explanation of how it was decided.

Nothing here raises on odd numbers (tiny n, zero variance, values near the float limit):
statistics are computed on values divided by a power of two (exact) so that no
intermediate overflows, and a reported float that is still not representable (the delta
from -1e308 to 1e308) is None.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from scipy import special

from labci_spec import Compare

Verdict = Literal[
    "improved",
    "regressed",
    "unchanged",
    "inconclusive",
    "unverified",
    "missing",
    "new",
    "invalid",
    "info",
]
# The order of `compare_metrics`: what a reviewer must look at first comes first.
VERDICT_ORDER: tuple[Verdict, ...] = (
    "regressed",
    "inconclusive",
    "unverified",
    "improved",
    "missing",
    "new",
    "invalid",
    "unchanged",
    "info",
)
DEFAULT_ALPHA = 0.05
Method = Literal["welch", "pooled", "floor"]


@dataclass(frozen=True)
class Summary:
    """One side's finite samples: std is the sample std (ddof=1), 0.0 for a single value."""

    n: int
    mean: float
    std: float

    @property
    def identical(self) -> bool:
        """Two or more values, all the same: a deterministic job, or a coarse metric."""
        return self.n >= 2 and self.std == 0.0


@dataclass(frozen=True, kw_only=True)
class MetricResult:
    """One metric of a job against its baseline, as the PR table and the gate need it.

    `goal` is None (and `gate` False) when no `compare` rule covers the metric. `delta` is
    head.mean - base.mean; `delta_pct` is relative to |base.mean| and None at a zero
    baseline; `interval` is the `interval_level` interval of the difference (1 − 2·alpha,
    the one the one-sided tests and TOST agree with). `p_value` is the raw p of the test
    that decided the verdict, `p_adjusted` the same after Holm's adjustment across the
    status's gated metrics. Floats are finite or None.
    """

    name: str
    goal: Literal["max", "min"] | None
    gate: bool
    base: Summary | None
    head: Summary | None
    delta: float | None = None
    delta_pct: float | None = None
    interval: tuple[float, float] | None = None
    interval_level: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    margin: float | None = None
    method: Method | None = None
    df: float | None = None
    family: int = 0  # how many gated metrics share the Holm adjustment
    alpha: float = DEFAULT_ALPHA
    verdict: Verdict
    worse_than_margin: bool = False  # the point estimate is worse than the tolerance
    explanation: str = ""


@dataclass(frozen=True)
class _Noise:
    """Standard error of the difference (scaled units) and its degrees of freedom (inf:
    known, from the floor), with where the variance came from."""

    se: float
    df: float
    method: Method
    source: str


@dataclass(frozen=True)
class _Assessment:
    """Everything about one metric but the verdict, which needs the whole family."""

    result: MetricResult  # verdict and p-values not yet decided
    rule: Compare | None
    noise: _Noise | None = None
    gain: float = 0.0  # the change in the goal's direction, scaled
    margin: float = 0.0  # the tolerance, scaled, with the boundary slack
    scale: float = 1.0
    p_regress: float = 1.0
    p_improve: float = 1.0
    p_equivalent: float = 1.0
    why_unverified: str = ""


def compare_metric(
    name: str,
    base: Sequence[float],
    head: Sequence[float],
    rule: Compare | None,
    *,
    history: Sequence[float | Summary] = (),
    alpha: float = DEFAULT_ALPHA,
) -> MetricResult:
    """Judge one metric alone (a family of one): `base` and `head` are its samples (one per
    seed), `history` earlier results on the base branch (values, or summaries of repeats)."""
    return compare_metrics(
        {name: base}, {name: head}, {name: rule} if rule else {}, history={name: history},
        alpha=alpha,
    )[0]  # fmt: skip


def compare_metrics(
    base: Mapping[str, Sequence[float]],
    head: Mapping[str, Sequence[float]],
    rules: Mapping[str, Compare],
    *,
    history: Mapping[str, Sequence[float | Summary]] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> list[MetricResult]:
    """Judge every metric either side reported, worst first (`VERDICT_ORDER`, then name).
    `alpha` is the family-wise level of this comparison (a look of adaptive repeats passes
    its share)."""
    history = history or {}
    assessed = [
        _assess(name, base.get(name, ()), head.get(name, ()), rules.get(name),
                history.get(name, ()), alpha)
        for name in set(base) | set(head)
    ]  # fmt: skip
    family = [a for a in assessed if a.noise is not None and a.rule is not None and a.rule.gate]
    adjusted_regress = holm([a.p_regress for a in family])
    adjusted_improve = holm([a.p_improve for a in family])
    adjusted = {
        a.result.name: (r, i) for a, r, i in zip(family, adjusted_regress, adjusted_improve, strict=True)
    }  # fmt: skip
    results = [_decide(a, adjusted.get(a.result.name), len(family), alpha) for a in assessed]
    return sorted(results, key=lambda r: (VERDICT_ORDER.index(r.verdict), r.name))


def regressions(results: Sequence[MetricResult]) -> list[MetricResult]:
    """The results that fail the commit status: regressed, on a metric with `gate: true`."""
    return [r for r in results if r.verdict == "regressed" and r.gate]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    Written here because SciPy offers only false-discovery-rate control
    (`false_discovery_control`), and statsmodels' `multipletests` would bring a large
    dependency for these few lines: sort ascending, multiply the i-th smallest by (m − i),
    keep the running maximum, cap at 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# Floating point: 0.912 - 0.902 is 0.010000000000000009, so a change written as exactly
# the tolerance would be "beyond" it. Differences within this share of the values' size
# count as on the boundary: ~10,000 times a double's rounding error, far below any noise
# a measurement has.
BOUNDARY_SLACK = 1e-12


def _assess(
    name: str,
    base: Sequence[float],
    head: Sequence[float],
    rule: Compare | None,
    history: Sequence[float | Summary],
    alpha: float,
) -> _Assessment:
    base_values, head_values = _finite(base), _finite(head)
    base_summary, head_summary = summarize(base_values), summarize(head_values)
    bare = MetricResult(
        name=name,
        goal=rule.goal if rule is not None else None,
        gate=rule.gate if rule is not None else False,
        base=base_summary,
        head=head_summary,
        alpha=alpha,
        verdict="info",
    )
    absent = _absence(base, head, base_values, head_values)
    if absent is not None or base_summary is None or head_summary is None:
        return _Assessment(replace(bare, verdict=absent or "invalid"), rule)
    scale = _scale_of([*base_values, *head_values])
    base_scaled, head_scaled = [v / scale for v in base_values], [v / scale for v in head_values]
    base_mean = statistics.mean(base_scaled)
    head_mean = statistics.mean(head_scaled)
    delta = head_mean - base_mean
    floor = _floor(rule, base_values + head_values, scale)
    noise, why = _noise(base_scaled, head_scaled, _history(history, scale), floor)
    allowed = rule.tolerance.allowed(base_mean * scale) / scale if rule is not None else 0.0
    size = max(abs(base_mean), abs(head_mean), allowed)
    margin = allowed + BOUNDARY_SLACK * size
    gain = delta if rule is None or rule.goal == "max" else -delta
    result = replace(
        bare,
        delta=_finite_or_none(delta * scale),
        delta_pct=_percent(delta, base_mean),
        margin=_finite_or_none(allowed * scale) if rule is not None else None,
        method=noise.method if noise else None,
        df=noise.df if noise else None,
        worse_than_margin=gain < -margin,
    )
    assessment = _Assessment(result, rule, noise, gain, margin, scale, why_unverified=why)
    if noise is None:
        return assessment
    below = _t_cdf((gain + margin) / noise.se, noise.df)  # P(T ≤ t) under "worse by m"
    above = _t_cdf(-(gain - margin) / noise.se, noise.df)  # P(T ≥ t) under "better by m"
    return replace(
        assessment,
        p_regress=below,
        p_improve=above,
        p_equivalent=max(1 - below, 1 - above),
    )


def _decide(
    a: _Assessment, adjusted: tuple[float, float] | None, family: int, alpha: float
) -> MetricResult:
    result = a.result
    if result.verdict != "info" or a.rule is None and a.noise is None:
        return replace(result, explanation=_absent_text(result))
    noise = a.noise
    if noise is None:  # a rule, but nothing to measure the noise with
        if _deterministic_and_equal(result):
            return replace(
                result,
                verdict="unchanged",
                explanation=f"identical on every run, {_sides(result)}, and equal to the base",
            )
        return replace(
            result,
            verdict="unverified",
            explanation=f"not gated: no noise estimate ({a.why_unverified})",
        )
    half = float(special.stdtrit(noise.df, 1 - alpha)) * noise.se
    sign = 1.0 if result.goal != "min" else -1.0
    delta = sign * a.gain
    interval = _interval(delta - half, delta + half, a.scale)
    p_regress, p_improve = adjusted if adjusted is not None else (a.p_regress, a.p_improve)
    result = replace(result, interval=interval, interval_level=1 - 2 * alpha, family=family)
    if a.rule is None:  # info: statistics shown, nothing decided
        return replace(
            result,
            p_value=_two_sided(a, noise),
            explanation=f"not compared ({_method_text(noise, result)})",
        )
    margin_text = _margin_text(result)
    if p_regress < alpha:
        verdict: Verdict = "regressed"
        raw, adj = a.p_regress, p_regress
        decision = f"worse by more than {margin_text}: p {_p_is(raw)}"
    elif p_improve < alpha:
        verdict, raw, adj = "improved", a.p_improve, p_improve
        decision = f"better by more than {margin_text}: p {_p_is(raw)}"
    elif a.p_equivalent < alpha:
        verdict, raw, adj = "unchanged", a.p_equivalent, a.p_equivalent
        decision = f"equivalent within ±{_number(result.margin)} (TOST): p {_p_is(raw)}"
    else:
        verdict, raw, adj = "inconclusive", a.p_regress, p_regress
        decision = f"no evidence either way at ±{_number(result.margin)}: p {_p_is(raw)}"
    if adjusted is not None and verdict != "unchanged" and family > 1:
        decision += f", Holm-adjusted over {family} gated metrics {_p(adj)}"
    decision += f" {'<' if verdict != 'inconclusive' else '≥'} {_number(alpha)}"
    return replace(
        result,
        verdict=verdict,
        p_value=_finite_or_none(raw),
        p_adjusted=_finite_or_none(adj),
        explanation=f"{_method_text(noise, result)}; {decision}",
    )


def _noise(
    base: list[float], head: list[float], history: list[Summary], floor: float
) -> tuple[_Noise | None, str]:
    """The standard error of the difference of means, or None and why there is none."""
    n_base, n_head = len(base), len(head)
    if n_base >= 2 and n_head >= 2:
        var_base, var_head = statistics.variance(base), statistics.variance(head)
        if var_base > 0 or var_head > 0 or floor > 0:
            return _welch(var_base, n_base, var_head, n_head, floor), ""
    sources: list[tuple[float, int]] = []  # (variance, degrees of freedom)
    lent = []
    for side, values in (("base", base), ("head", head)):
        if len(values) >= 2:
            sources.append((statistics.variance(values), len(values) - 1))
            lent.append(f"the {side}'s {len(values)} runs")
    singles = [h.mean for h in history if h.n == 1]
    if len(singles) >= 2:
        sources.append((_variance(singles), len(singles) - 1))
    repeated = [h for h in history if h.n >= 2]
    sources.extend((h.std * h.std, h.n - 1) for h in repeated)
    # A history that dwarfs these values (a variance beyond the float range) says nothing.
    sources = [(v, d) for v, d in sources if math.isfinite(v)]
    if len(singles) >= 2 or repeated:
        lent.append(f"{len(history)} base-branch results")
    df = sum(d for _, d in sources)
    pooled = sum(v * d for v, d in sources) / df if df else 0.0
    spread = math.sqrt(1 / n_base + 1 / n_head)
    if pooled > floor and math.isfinite(pooled):
        return _Noise(math.sqrt(pooled) * spread, df, "pooled", " and ".join(lent)), ""
    if floor > 0:
        return _Noise(math.sqrt(floor) * spread, math.inf, "floor", ""), ""
    if df:
        return None, "identical on every run; declare its `test-size` for a binomial floor"
    return None, (
        f"{n_base} vs {n_head} run{'s' if n_head > 1 else ''} and fewer than 2 "
        "base-branch results; add seeds (`metrics.repeats`) or let the base branch run more"
    )


def _variance(values: list[float]) -> float:
    """The sample variance of values of any size: inf when it is beyond the float range."""
    own = _scale_of(values)
    try:
        return statistics.variance([v / own for v in values]) * own * own
    except OverflowError:
        return math.inf


def _welch(var_base: float, n_base: int, var_head: float, n_head: int, floor: float) -> _Noise:
    """Welch's test with each side's variance at least the floor; a side at the floor is
    known and adds nothing to the Welch-Satterthwaite denominator."""
    terms = []
    denominator = 0.0
    for var, n in ((var_base, n_base), (var_head, n_head)):
        term = max(var, floor) / n
        terms.append(term)
        if var > floor:
            denominator += term * term / (n - 1)
    total = sum(terms)
    if denominator == 0:  # both sides at the floor: a known variance
        return _Noise(math.sqrt(total), math.inf, "floor", "")
    return _Noise(math.sqrt(total), total * total / denominator, "welch", "")


def _floor(rule: Compare | None, values: list[float], scale: float) -> float:
    """The binomial variance of one run of a share measured on `test-size` items, scaled;
    0 without a test size or for values that are neither shares nor percentages."""
    size = getattr(rule, "test_size", None) if rule is not None else None
    if not size or not values:
        return 0.0
    unit = 1.0 if all(0.0 <= v <= 1.0 for v in values) else 100.0
    if not all(0.0 <= v <= unit for v in values):
        return 0.0
    share = statistics.fmean(values) / unit
    # A share of 0 or 1 still has the noise of one item flipping.
    share = min(max(share, 0.5 / size), 1 - 0.5 / size)
    return share * (1 - share) / size * (unit / scale) ** 2


def _history(history: Sequence[float | Summary], scale: float) -> list[Summary]:
    kept: list[Summary] = []
    for point in history:
        if isinstance(point, Summary):
            if point.n >= 1 and math.isfinite(point.mean) and math.isfinite(point.std):
                kept.append(Summary(point.n, point.mean / scale, point.std / scale))
        else:
            kept.extend(Summary(1, v / scale, 0.0) for v in _finite([point]))
    return kept


def _two_sided(a: _Assessment, noise: _Noise) -> float | None:
    return _finite_or_none(2 * _t_cdf(-abs(a.gain) / noise.se, noise.df))


def _t_cdf(t: float, df: float) -> float:
    """Student's t distribution function; SciPy's `special.stdtr` rather than `stats.t`,
    which costs ~20× more per call (the Monte-Carlo tests make millions), same values."""
    return float(special.stdtr(df, t))


def _deterministic_and_equal(result: MetricResult) -> bool:
    base, head = result.base, result.head
    return (
        base is not None
        and head is not None
        and base.identical
        and head.identical
        and base.mean == head.mean
    )


def _method_text(noise: _Noise, result: MetricResult) -> str:
    counts = _sides(result)
    if noise.method == "welch":
        return f"Welch's t-test, {counts}"
    if noise.method == "floor":
        return f"binomial floor of the test size, {counts}"
    return f"t-test, {counts}, noise from {noise.source} (df {noise.df:g})"


def _sides(result: MetricResult) -> str:
    base = result.base.n if result.base else 0
    head = result.head.n if result.head else 0
    return f"n = {base} vs {head}"


def _margin_text(result: MetricResult) -> str:
    return f"the tolerance {_number(result.margin)}" if result.margin else "0 (no tolerance)"


def _absent_text(result: MetricResult) -> str:
    return {
        "missing": "the head did not report it",
        "new": "the base did not report it",
        "invalid": "a side reported only NaN or infinite values",
    }.get(result.verdict, "")


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _p_is(value: float) -> str:
    """A p-value in a sentence: "< 0.001" or "= 0.012"."""
    text = _p(value)
    return text if text.startswith("<") else f"= {text}"


def _finite(values: Sequence[float]) -> list[float]:
    kept: list[float] = []
    for value in values:
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            continue
        if math.isfinite(number):
            kept.append(number)
    return kept


def _absence(
    base: Sequence[float], head: Sequence[float], base_values: list[float], head_values: list[float]
) -> Verdict | None:
    if (len(base) > 0 and not base_values) or (len(head) > 0 and not head_values):
        return "invalid"
    if not head_values:
        return "missing"  # also when the base has none either: the head shows nothing
    if not base_values:
        return "new"
    return None


def _scale_of(values: Sequence[float]) -> float:
    """A power of two near max |value|: dividing by it is exact and keeps values below 2."""
    largest = max((abs(v) for v in values), default=0.0)
    if largest == 0.0:
        return 1.0
    return math.ldexp(1.0, math.frexp(largest)[1] - 1)


def summarize(values: Sequence[float]) -> Summary | None:
    """The finite values' count, mean and sample std; None when there are none."""
    values = _finite(values)
    if not values:
        return None
    scale = _scale_of(values)
    scaled = [v / scale for v in values]
    std = statistics.stdev(scaled) * scale if len(values) > 1 else 0.0
    mean = statistics.mean(scaled) * scale  # exact: identical samples keep std 0.0
    return Summary(n=len(values), mean=mean, std=min(std, sys.float_info.max))


def _percent(delta: float, base_mean: float) -> float | None:
    if base_mean == 0.0:
        return None
    return _finite_or_none(delta / abs(base_mean) * 100)


def _interval(low: float, high: float, scale: float) -> tuple[float, float] | None:
    low_value, high_value = _finite_or_none(low * scale), _finite_or_none(high * scale)
    return None if low_value is None or high_value is None else (low_value, high_value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
