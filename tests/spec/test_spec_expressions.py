"""`${{ }}` expressions: GitHub's documented semantics, table-driven, and every error's offset."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labci_spec.errors import ExpressionError
from labci_spec.expressions import (
    CALLER_FUNCTIONS,
    Embedded,
    EvalContext,
    Reference,
    condition_source,
    evaluate,
    evaluate_condition,
    find_expressions,
    functions_called,
    is_truthy,
    parse_expression,
    references,
    render,
    to_text,
)

SHARED_LIST = [1, 2, 3]
CYCLE: list[Any] = []
CYCLE.append(CYCLE)
CONTEXTS: dict[str, Any] = {
    "matrix": {
        "seed": 3,
        "list": SHARED_LIST,
        "same": SHARED_LIST,
        "obj": {"Key": "upper", "key2": "lower"},
        "key": "seed",
        "half": "x" * (512 * 1024 + 1),
        "kilo": "x" * 1000,
        "big_json": "[" + "0," * 40_000 + "0]",
        "deep_json": "[" * 65 + "]" * 65,
        "deep_ok": "[" * 64 + "]" * 64,
        "digits": "1" * 5000,
        "huge": 10**400,
        "cycle": CYCLE,
        "empty": "",
        "wide": ["x" * 1000] * 1100,
    },
    "github": {
        "ref": "refs/heads/main",
        "event_name": "push",
        "event": {"pull_request": {"title": "Fix `rm -rf /`"}},
    },
    "steps": {"my-step": {"outputs": {"value": "out"}}},
}
CTX = EvalContext(contexts=CONTEXTS)


def value_of(source: str, ctx: EvalContext = CTX) -> Any:
    return evaluate(parse_expression(source), ctx)


def error_of(source: str, ctx: EvalContext = CTX) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        value_of(source, ctx)
    return caught.value


LITERAL_CASES = [
    ("null", "null", None),
    ("true", "true", True),
    ("false", "false", False),
    ("integer", "711", 711),
    ("negative-float", "-9.2", -9.2),
    ("hex", "0xff", 255),
    ("hex-upper-digits", "0xFF", 255),
    ("negative-hex", "-0x10", -16),
    ("exponent", "-2.99e-2", -0.0299),
    ("exponent-int", "1e3", 1000.0),
    ("minus-zero", "-0", 0),
    ("long-integer-is-float", "12345678901234567890", 1.2345678901234567e19),
    ("string", "'Mona the Octocat'", "Mona the Octocat"),
    ("escaped-quote", "'It''s open source!'", "It's open source!"),
    ("empty-string", "''", ""),
    ("double-quote-inside", "'say \"hi\"'", 'say "hi"'),
    ("infinity", "Infinity", math.inf),
    ("minus-infinity", "-Infinity", -math.inf),
    ("whitespace-newlines", "\n\t 1 \n", 1),
]


@pytest.mark.parametrize(
    ("source", "expected"),
    [case[1:] for case in LITERAL_CASES],
    ids=[case[0] for case in LITERAL_CASES],
)
def test_literals(source: str, expected: Any) -> None:
    value = value_of(source)
    assert value == expected
    assert type(value) is type(expected)


def test_nan_literal() -> None:
    assert math.isnan(value_of("NaN"))


OPERATOR_CASES = [
    # loose equality: GitHub's coercion table
    ("null-eq-zero", "null == 0", True),
    ("empty-string-eq-zero", "'' == 0", True),
    ("blank-string-eq-zero", "'  ' == 0", True),
    ("strings-ignore-case", "'abc' == 'ABC'", True),
    ("strings-differ", "'abc' == 'abd'", False),
    ("true-eq-one", "true == 1", True),
    ("false-eq-zero", "false == 0", True),
    ("true-eq-string-one", "true == '1'", True),
    ("string-eq-number", "'1' == 1", True),
    ("padded-string-eq-number", "' 123456.789 ' == 123456.789", True),
    ("signed-string-eq-number", "'+5' == 5", True),
    ("hex-string-eq-number", "'0xff' == 255", True),
    ("octal-string-eq-number", "'0o10' == 8", True),
    ("infinity-string", "'Infinity' == Infinity", True),
    ("junk-string-ne-zero", "'abc' == 0", False),
    ("junk-string-ne", "'abc' != 0", True),
    ("null-eq-null", "null == null", True),
    ("null-eq-empty-string", "null == ''", True),
    ("null-eq-false", "null == false", True),
    ("nan-ne-nan", "NaN == NaN", False),
    ("nan-not-equal", "NaN != NaN", True),
    ("nan-string", "'NaN' == NaN", False),
    ("array-is-itself", "matrix.list == matrix.same", True),
    ("arrays-not-equal-by-value", "fromJSON('[]') == fromJSON('[]')", False),
    ("array-ne-number", "matrix.list == 0", False),
    ("array-not-equal-number", "matrix.list != 0", True),
    ("object-ne-string", "matrix.obj == 'x'", False),
    ("huge-int", "matrix.huge > 1", True),
    ("huge-int-vs-string", "matrix.huge == '1'", False),
    ("github-ref", "github.ref == 'refs/heads/main'", True),
    # ordering
    ("less", "1 < 2", True),
    ("less-equal-floats", "1.001 < 1.002", True),
    ("not-less", "2 < 1", False),
    ("less-or-equal", "1 <= 1", True),
    ("greater", "2 > 1", True),
    ("greater-or-equal", "1 >= 2", False),
    ("strings-order-ignoring-case", "'a' < 'B'", True),
    ("strings-order", "'def' > 'abc'", True),
    ("booleans-order", "false < true", True),
    ("booleans-not-greater", "true > true", False),
    ("null-less-than-one", "null < 1", True),
    ("null-le-null", "null <= null", True),
    ("string-vs-number-order", "'10' > 2", True),
    ("string-vs-number-order-2", "'2' > 10", False),
    ("nan-not-less", "NaN < 1", False),
    ("nan-not-ge", "NaN >= NaN", False),
    ("arrays-unordered", "matrix.list < matrix.list", False),
    ("arrays-le-itself", "matrix.list <= matrix.list", True),
    # not
    ("not-true", "!true", False),
    ("not-zero", "!0", True),
    ("not-minus-zero", "!-0", True),
    ("not-empty", "!''", True),
    ("not-text", "!'x'", False),
    ("not-null", "!null", True),
    ("not-nan", "!NaN", True),
    ("not-array", "!matrix.list", False),
    ("not-not", "!!'x'", True),
    ("triple-not", "!!!'x'", False),
    ("not-binds-tighter", "!1 == false", True),
    # && and || return operands
    ("or-falls-through", "'' || 'x'", "x"),
    ("or-first-truthy", "'a' || 'b'", "a"),
    ("or-last-falsy", "false || 0 || ''", ""),
    ("or-nulls", "null || null", None),
    ("and-first-falsy", "0 && 'x'", 0),
    ("and-last", "'a' && 'b'", "b"),
    ("and-array", "true && matrix.list", SHARED_LIST),
    (
        "ternary-idiom",
        "github.ref == 'refs/heads/main' && 'value_for_main_branch' || 'other'",
        "value_for_main_branch",
    ),
    ("ternary-idiom-else", "github.ref == 'x' && 'main' || 'other'", "other"),
    ("and-before-or", "true || false && false", True),
    ("parentheses", "(true || false) && false", False),
    ("relational-before-equality", "1 < 2 == true", True),
    ("comparison-chain", "1 == 1 == 1", True),
    ("comparison-before-and", "1 == 1 && 2 == 2", True),
    ("short-circuit-skips-call", "true || hashFiles('x')", True),
    ("and-short-circuit-skips-call", "false && success()", False),
    # property and index access
    ("property", "matrix.seed", 3),
    ("index-string", "matrix['seed']", 3),
    ("index-number", "matrix.list[0]", 1),
    ("index-floors", "matrix.list[1.7]", 2),
    ("index-string-number", "matrix.list['2']", 3),
    ("index-true", "matrix.list[true]", 2),
    ("index-negative", "matrix.list[-1]", None),
    ("index-past-end", "matrix.list[3]", None),
    ("index-nan", "matrix.list['x']", None),
    ("index-infinity", "matrix.list[Infinity]", None),
    ("index-computed", "matrix[matrix.key]", 3),
    ("index-of-object-by-array", "matrix[matrix.list]", None),
    ("missing-property", "matrix.nope", None),
    ("missing-context", "nope.deeper.still", None),
    ("property-of-number", "matrix.seed.x", None),
    ("property-of-array", "matrix.list.length", None),
    ("index-of-string", "'abc'[0]", None),
    ("context-name-ignores-case", "MATRIX.SEED", 3),
    ("exact-key-first", "matrix.obj.key2", "lower"),
    ("key-ignores-case", "matrix.obj.key", "upper"),
    ("hyphen-names", "steps.my-step.outputs.value", "out"),
    ("keyword-as-property", "matrix.null", None),
    ("parenthesised-target", "(matrix).seed", 3),
    ("call-result-index", "fromJSON('{\"a\": [1, 2]}').a[1]", 2),
]


@pytest.mark.parametrize(
    ("source", "expected"),
    [case[1:] for case in OPERATOR_CASES],
    ids=[case[0] for case in OPERATOR_CASES],
)
def test_operators(source: str, expected: Any) -> None:
    value = value_of(source)
    assert value == expected
    assert type(value) is type(expected)


def test_or_returns_the_same_object() -> None:
    assert value_of("null || matrix.list") is SHARED_LIST


FUNCTION_CASES = [
    ("contains-string", "contains('Hello world', 'llo')", True),
    ("contains-ignores-case", "contains('Hello world', 'WORLD')", True),
    ("contains-missing", "contains('Hello', 'x')", False),
    ("contains-number-as-text", "contains(123, 2)", True),
    ("contains-null-empty", "contains(null, '')", True),
    ("contains-bool", "contains('is true', true)", True),
    ("contains-array", "contains(matrix.list, 2)", True),
    ("contains-array-loose", "contains(matrix.list, '2')", True),
    ("contains-array-missing", "contains(matrix.list, 5)", False),
    (
        "contains-from-json",
        'contains(fromJSON(\'["push", "pull_request"]\'), github.event_name)',
        True,
    ),
    ("contains-array-strings-ignore-case", "contains(fromJSON('[\"A\"]'), 'a')", True),
    ("contains-item-array", "contains('abc', matrix.list)", False),
    ("contains-object", "contains(matrix.obj, 'Key')", False),
    ("starts-with", "startsWith('Hello world', 'He')", True),
    ("starts-with-ignores-case", "startsWith('Hello world', 'hE')", True),
    ("starts-with-not", "startsWith('Hello', 'lo')", False),
    ("starts-with-number", "startsWith(12, 1)", True),
    ("starts-with-array", "startsWith(matrix.list, 1)", False),
    ("ends-with", "endsWith('Hello world', 'ld')", True),
    ("ends-with-ignores-case", "endsWith('Hello', 'LO')", True),
    ("ends-with-not", "endsWith('Hello', 'He')", False),
    ("ends-with-object", "endsWith('x', matrix.obj)", False),
    (
        "format-docs",
        "format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')",
        "Hello Mona the Octocat",
    ),
    (
        "format-escapes",
        "format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')",
        "{Hello Mona the Octocat!}",
    ),
    ("format-repeat", "format('{0}{0}', 'x')", "xx"),
    ("format-order", "format('{1}-{0}', 'a', 'b')", "b-a"),
    ("format-unused-argument", "format('{0}', 'a', 'b')", "a"),
    ("format-plain", "format('plain')", "plain"),
    ("format-only-escapes", "format('{{}}')", "{}"),
    ("format-null", "format('[{0}]', null)", "[]"),
    ("format-numbers", "format('{0} {1} {2}', 1.0, 0.1, true)", "1 0.1 true"),
    ("format-array", "format('{0}', matrix.list)", "[1,2,3]"),
    ("format-number-template", "format(12)", "12"),
    ("join-default", "join(matrix.list)", "1,2,3"),
    ("join-separator", "join(matrix.list, ', ')", "1, 2, 3"),
    ("join-null-separator", "join(matrix.list, null)", "123"),
    ("join-array-separator-ignored", "join(matrix.list, matrix.list)", "1,2,3"),
    ("join-string", "join('abc', '-')", "abc"),
    ("join-null", "join(null)", ""),
    ("join-object", "join(matrix.obj)", ""),
    ("join-empty", "join(fromJSON('[]'))", ""),
    ("join-mixed", "join(fromJSON('[true, null, \"x\", 1.5, [1]]'))", "true,,x,1.5,[1]"),
    ("to-json-string", "toJSON('x')", '"x"'),
    ("to-json-number", "toJSON(1)", "1"),
    ("to-json-null", "toJSON(null)", "null"),
    ("to-json-object", "toJSON(matrix.obj)", '{\n  "Key": "upper",\n  "key2": "lower"\n}'),
    ("to-json-unicode", "toJSON('é')", '"é"'),
    ("from-json-true", "fromJSON('true')", True),
    ("from-json-number", "fromJSON(' 3.5 ')", 3.5),
    ("from-json-null", "fromJSON('null')", None),
    ("from-json-object", "fromJSON('{\"a\": 1}')", {"a": 1}),
    ("from-json-depth-64", "startsWith(join(fromJSON(matrix.deep_ok)), '[[')", True),
    ("from-json-brackets-in-strings", "fromJSON('\"[[[[\"')", "[[[["),
    ("name-ignores-case", "CONTAINS('ab', 'B')", True),
    ("name-lower", "tojson(true)", "true"),
]


@pytest.mark.parametrize(
    ("source", "expected"),
    [case[1:] for case in FUNCTION_CASES],
    ids=[case[0] for case in FUNCTION_CASES],
)
def test_functions(source: str, expected: Any) -> None:
    value = value_of(source)
    assert value == expected
    assert type(value) is type(expected)


def test_caller_functions_get_their_arguments() -> None:
    seen: list[tuple[Any, ...]] = []

    def hash_files(*patterns: Any) -> str:
        seen.append(patterns)
        return "abc123"

    ctx = EvalContext(
        contexts=CONTEXTS, functions={"success": lambda: True, "hashfiles": hash_files}
    )
    assert value_of("Success() && hashFiles('**/*.lock', matrix.seed)", ctx) == "abc123"
    assert seen == [("**/*.lock", 3)]
    assert CALLER_FUNCTIONS == {"success", "failure", "always", "cancelled", "hashfiles"}


TEXT_CASES = [
    ("null", None, ""),
    ("true", True, "true"),
    ("false", False, "false"),
    ("int", 42, "42"),
    ("integral-float", 3.0, "3"),
    ("minus-zero", -0.0, "0"),
    ("float", 0.1, "0.1"),
    ("float-2", 2.5, "2.5"),
    ("large-float", 1e20, "1e+20"),
    ("large-int", 10**20, "100000000000000000000"),
    ("huge-int", 10**400, "Infinity"),
    ("nan", math.nan, "NaN"),
    ("infinity", math.inf, "Infinity"),
    ("minus-infinity", -math.inf, "-Infinity"),
    ("string", "a b", "a b"),
    ("list", [1, "a", None], '[1,"a",null]'),
    ("tuple", (1, 2), "[1,2]"),
    ("dict", {"a": {"b": True}}, '{"a":{"b":true}}'),
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [case[1:] for case in TEXT_CASES],
    ids=[case[0] for case in TEXT_CASES],
)
def test_to_text(value: Any, expected: str) -> None:
    assert to_text(value) == expected


def test_to_text_refuses_a_cycle() -> None:
    with pytest.raises(ExpressionError, match="^value cannot be written as JSON: Circular"):
        to_text(CYCLE)


TRUTHY_CASES = [
    ("false", False, False),
    ("zero", 0, False),
    ("minus-zero", -0.0, False),
    ("nan", math.nan, False),
    ("empty-string", "", False),
    ("null", None, False),
    ("true", True, True),
    ("one", 1, True),
    ("negative", -0.5, True),
    ("infinity", math.inf, True),
    ("text", "false", True),
    ("zero-text", "0", True),
    ("empty-list", [], True),
    ("empty-dict", {}, True),
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [case[1:] for case in TRUTHY_CASES],
    ids=[case[0] for case in TRUTHY_CASES],
)
def test_is_truthy(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected


FIND_CASES = [
    ("none", "plain text", []),
    ("one", "a ${{ 1 }} b", [(2, 10, " 1 ")]),
    ("two", "${{ a }}-${{ b }}", [(0, 8, " a "), (9, 17, " b ")]),
    ("adjacent", "${{1}}${{2}}", [(0, 6, "1"), (6, 12, "2")]),
    ("braces-in-string", "x ${{ '}}' }} y", [(2, 13, " '}}' ")]),
    ("escaped-quote-then-braces", "${{ 'a''}}' }}", [(0, 14, " 'a''}}' ")]),
    ("dollar-before", "$${{ 1 }}", [(1, 9, " 1 ")]),
    ("not-an-opening", "${ { 1 }}", []),
    ("closing-without-opening", "a }} b", []),
    ("extra-brace", "${{ 1 }}}", [(0, 8, " 1 ")]),
    ("multiline", "echo\n${{\n  matrix.seed\n}}\n", [(5, 25, "\n  matrix.seed\n")]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in FIND_CASES],
    ids=[case[0] for case in FIND_CASES],
)
def test_find_expressions(text: str, expected: list[tuple[int, int, str]]) -> None:
    found = find_expressions(text)
    assert [(e.start, e.end, e.source) for e in found] == expected
    for embedded in found:
        assert text[embedded.start : embedded.end] == "${{" + embedded.source + "}}"
        assert embedded.tree == parse_expression(embedded.source, base_offset=embedded.start + 3)


def test_find_expressions_offsets_reach_the_tree() -> None:
    [embedded] = find_expressions("run: ${{ github.sha }}")
    assert embedded == Embedded(5, 22, " github.sha ", embedded.tree)
    assert references(embedded.tree) == [Reference(("github", "sha"), 9)]


REFERENCE_CASES = [
    (
        "dotted",
        "github.event.pull_request.title",
        [(("github", "event", "pull_request", "title"), 0)],
    ),
    ("bare", "matrix", [(("matrix",), 0)]),
    ("string-index", "secrets['X']", [(("secrets", "X"), 0)]),
    ("number-index", "a[0].b", [(("a", "0", "b"), 0)]),
    (
        "mixed-index",
        "github['event'].pull_request.title",
        [(("github", "event", "pull_request", "title"), 0)],
    ),
    (
        "computed-index-stops",
        "a[matrix.i].b",
        [(("a",), 0), (("matrix", "i"), 2)],
    ),
    ("bool-index-stops", "a[true].b", [(("a",), 0)]),
    ("root-lower-cased", "GITHUB.Event", [(("github", "Event"), 0)]),
    ("parenthesised", "(github).sha", [(("github", "sha"), 1)]),
    ("call-result", "fromJSON(env.x).y", [(("env", "x"), 9)]),
    (
        "source-order",
        "format('{0}', github.head_ref) == inputs.name || !env.X",
        [(("github", "head_ref"), 14), (("inputs", "name"), 34), (("env", "X"), 50)],
    ),
    ("nested-index", "a[b[c]]", [(("a",), 0), (("b",), 2), (("c",), 4)]),
    ("literals-only", "true && 'x' || null || NaN", []),
    ("function-names-are-not-contexts", "success()", []),
]


@pytest.mark.parametrize(
    ("source", "expected"),
    [case[1:] for case in REFERENCE_CASES],
    ids=[case[0] for case in REFERENCE_CASES],
)
def test_references(source: str, expected: list[tuple[tuple[str, ...], int]]) -> None:
    assert references(parse_expression(source)) == [Reference(p, o) for p, o in expected]


def test_references_offsets_use_base_offset() -> None:
    assert references(parse_expression(" env.A", base_offset=10)) == [Reference(("env", "A"), 11)]


FUNCTION_CALL_CASES = [
    ("none", "a.b", []),
    ("one", "Success()", [("success", 0)]),
    (
        "nested-in-order",
        "always() && contains(format('{0}', 1), hashFiles('x'))",
        [("always", 0), ("contains", 12), ("format", 21), ("hashfiles", 39)],
    ),
    ("inside-index", "a[toJSON(1)]", [("tojson", 2)]),
]


@pytest.mark.parametrize(
    ("source", "expected"),
    [case[1:] for case in FUNCTION_CALL_CASES],
    ids=[case[0] for case in FUNCTION_CALL_CASES],
)
def test_functions_called(source: str, expected: list[tuple[str, int]]) -> None:
    assert functions_called(parse_expression(source)) == expected


RENDER_CASES = [
    ("plain", "no expressions", None, "no expressions"),
    ("one", "--seed ${{ matrix.seed }}", None, "--seed 3"),
    ("two", "${{ matrix.seed }}/${{ matrix.list[0] }}", None, "3/1"),
    ("null-is-empty", "[${{ matrix.nope }}]", None, "[]"),
    ("array-as-json", "${{ matrix.list }}", None, "[1,2,3]"),
    ("float", "${{ 1.50 }}", None, "1.5"),
    ("boolean", "${{ matrix.seed > 2 }}", None, "true"),
    ("only-matrix", "${{ matrix.seed }} ${{ github.sha }}", ["matrix"], "3 ${{ github.sha }}"),
    ("only-ignores-case", "${{ MATRIX.seed }}", ["Matrix"], "3"),
    ("only-literal", "${{ 'a' }}", ["matrix"], "a"),
    (
        "only-caller-function",
        "${{ success() }}-${{ matrix.seed }}",
        ["matrix"],
        "${{ success() }}-3",
    ),
    (
        "only-hash-files",
        "${{ hashFiles(matrix.seed) }}",
        ["matrix"],
        "${{ hashFiles(matrix.seed) }}",
    ),
    (
        "only-mixed-contexts",
        "${{ format('{0}{1}', matrix.seed, steps.x.outputs.y) }}",
        ["matrix"],
        "${{ format('{0}{1}', matrix.seed, steps.x.outputs.y) }}",
    ),
    ("only-empty", "${{ matrix.seed }}", [], "${{ matrix.seed }}"),
]


@pytest.mark.parametrize(
    ("text", "only", "expected"),
    [case[1:] for case in RENDER_CASES],
    ids=[case[0] for case in RENDER_CASES],
)
def test_render(text: str, only: list[str] | None, expected: str) -> None:
    assert render(text, CTX, only=only) == expected


CONDITION_SOURCE_CASES = [
    ("bare", "github.ref == 'x'", ("github.ref == 'x'", 0)),
    ("wrapped", "${{ a }}", (" a ", 3)),
    ("wrapped-padded", "  ${{ a }}\n", (" a ", 5)),
    ("braces-in-string", "${{ a == '}}' }}", (" a == '}}' ", 3)),
    ("two-expressions", "${{ a }} && ${{ b }}", ("${{ a }} && ${{ b }}", 0)),
    ("text-after", "${{ a }} x", ("${{ a }} x", 0)),
    ("unclosed", "${{ a", ("${{ a", 0)),
    ("empty", "", ("", 0)),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in CONDITION_SOURCE_CASES],
    ids=[case[0] for case in CONDITION_SOURCE_CASES],
)
def test_condition_source(text: str, expected: tuple[str, int]) -> None:
    assert condition_source(text) == expected


STATUS = {"success": lambda: True, "failure": lambda: False, "always": lambda: True}
CONDITION_CASES = [
    ("bare", "github.event_name == 'push'", True),
    ("wrapped", "${{ github.event_name == 'pull_request' }}", False),
    ("truthy-string", "${{ github.ref }}", True),
    ("falsy-empty", "matrix.empty", False),
    ("status", "success() && !failure()", True),
    ("always", "${{ always() }}", True),
    ("missing-context", "env.NOPE", False),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in CONDITION_CASES],
    ids=[case[0] for case in CONDITION_CASES],
)
def test_evaluate_condition(text: str, expected: bool) -> None:
    ctx = EvalContext(contexts=CONTEXTS, functions=STATUS)
    assert evaluate_condition(text, ctx) is expected


def test_evaluate_condition_error_offset_is_in_the_whole_text() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_condition("  ${{ a = b }}", CTX)
    assert (caught.value.offset, caught.value.message) == (8, "unexpected '='; compare with '=='")


KNOWN = (
    "contains, startsWith, endsWith, format, join, toJSON, fromJSON, "
    "success, failure, always, cancelled, hashFiles"
)
PARSE_ERROR_CASES = [
    ("double-quotes", '"x"', 0, "strings use single quotes: write 'text', not \"text\""),
    (
        "unclosed-string",
        "a == 'x",
        5,
        "string is never closed; add a ' (write '' for a quote inside it)",
    ),
    ("single-equals", "a = 1", 2, "unexpected '='; compare with '=='"),
    ("single-ampersand", "a & b", 2, "unexpected '&'; 'and' is written '&&'"),
    ("single-bar", "a | b", 2, "unexpected '|'; 'or' is written '||'"),
    (
        "object-filter",
        "a.*.b",
        2,
        "unexpected '*'; object filters such as labels.*.name are not supported",
    ),
    ("plus", "1 + 2", 2, "unexpected character '+'"),
    (
        "nested-template",
        "${{ a }}",
        0,
        "unexpected '$'; an expression cannot contain another '${{ }}'",
    ),
    ("unicode", "a == \u00e9", 5, "unexpected character 'é'"),
    ("number-then-letters", "1abc", 0, "invalid number '1abc'; write e.g. 12, -1.5, 1e3 or 0xff"),
    (
        "long-number-shortened",
        "1" * 30 + "x",
        0,
        "invalid number '111111111111111111111111'; write e.g. 12, -1.5, 1e3 or 0xff",
    ),
    ("two-dots", "1.2.3", 0, "invalid number '1.2.3'; write e.g. 12, -1.5, 1e3 or 0xff"),
    ("bare-hex-prefix", "0x", 0, "invalid number '0x'; write e.g. 12, -1.5, 1e3 or 0xff"),
    ("dangling-exponent", "x == 1e", 5, "invalid number '1e'; write e.g. 12, -1.5, 1e3 or 0xff"),
    ("lone-minus", "- 1", 0, "unexpected '-'; it can only start a number such as -1"),
    ("long-hex", "0x" + "f" * 17, 0, "hex number has more than 16 digits"),
    (
        "empty",
        "",
        0,
        "empty expression: expected a value such as true, 1, 'text' or matrix.seed",
    ),
    (
        "blank",
        "   ",
        3,
        "empty expression: expected a value such as true, 1, 'text' or matrix.seed",
    ),
    ("missing-operand", "a ==", 4, "expected a value, found the end of the expression"),
    ("leading-operator", "== a", 0, "expected a value, found '=='"),
    ("two-values", "a b", 2, "unexpected name 'b'; expected an operator such as == or &&"),
    ("stray-close", "a)", 1, "unexpected ')'; expected an operator such as == or &&"),
    ("empty-parens", "()", 1, "expected a value, found ')'"),
    ("unclosed-paren", "(a", 2, "expected ')' to close '(', found the end of the expression"),
    ("unclosed-index", "a[1", 3, "expected ']' to close '[', found the end of the expression"),
    ("number-property", "a.1", 2, "expected a property name after '.', found number 1"),
    ("string-property", "a.'b'", 2, "expected a property name after '.', found string 'b'"),
    (
        "trailing-dot",
        "a.",
        2,
        "expected a property name after '.', found the end of the expression",
    ),
    ("double-dot", "a..b", 2, "expected a property name after '.', found '.'"),
    ("method-call", "matrix.x(1)", 8, "unexpected '('; expected an operator such as == or &&"),
    ("unknown-function", "x && foo(1)", 5, f"unknown function 'foo'; use {KNOWN}"),
    ("arity-two", "contains(1)", 0, "contains() takes 2 arguments, got 1"),
    ("arity-at-least-one", "format()", 0, "format() takes at least 1 argument, got 0"),
    ("arity-range", "join(1, 2, 3)", 0, "join() takes 1 or 2 arguments, got 3"),
    ("arity-zero", "success(1)", 0, "success() takes 0 arguments, got 1"),
    ("arity-one", "toJSON()", 0, "toJSON() takes 1 argument, got 0"),
    ("arity-hash-files", "hashFiles()", 0, "hashFiles() takes at least 1 argument, got 0"),
    (
        "unclosed-call",
        "contains(1, 2",
        13,
        "expected ')' to close contains(, found the end of the expression",
    ),
    ("trailing-comma", "contains(1,)", 11, "expected a value, found ')'"),
    ("comma-outside-call", "a, b", 1, "unexpected ','; expected an operator such as == or &&"),
    (
        "long-token-shortened",
        "a 'abcdefghijklmnopqrstuvwxyz'",
        2,
        "unexpected string 'abcdefghijklmnop...; expected an operator such as == or &&",
    ),
    (
        "too-deep-parens",
        "(" * 33 + "1" + ")" * 33,
        32,
        "expression nests deeper than 32 levels of (), [] and calls",
    ),
    (
        "too-deep-index",
        "a[" * 33 + "0" + "]" * 33,
        65,
        "expression nests deeper than 32 levels of (), [] and calls",
    ),
    (
        "too-deep-calls",
        "toJSON(" * 33 + "1" + ")" * 33,
        7 * 32 + 6,
        "expression nests deeper than 32 levels of (), [] and calls",
    ),
    (
        "too-many-tokens",
        " || ".join(["1"] * 1001),
        5 * 1000,
        "expression has more than 2000 tokens; split it up",
    ),
    (
        "too-long",
        "a" * 8193,
        0,
        "expression is 8193 characters long; the limit is 8192",
    ),
]


@pytest.mark.parametrize(
    ("source", "offset", "message"),
    [case[1:] for case in PARSE_ERROR_CASES],
    ids=[case[0] for case in PARSE_ERROR_CASES],
)
def test_parse_errors(source: str, offset: int, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(source, base_offset=100)
    assert (caught.value.offset, caught.value.message) == (100 + offset, message)
    assert str(caught.value) == message


def test_limits_are_inclusive() -> None:
    assert value_of("(" * 32 + "1" + ")" * 32) == 1
    assert value_of("!(" + " || ".join(["0"] * 999) + ")") is True
    assert value_of("a" + "[0]" * 100) is None
    assert value_of("a[" * 32 + "0" + "]" * 32) is None
    assert value_of("'" + "a" * 8190 + "'") == "a" * 8190


EVAL_ERROR_CASES = [
    ("success-unavailable", "success()", 0, "success() is not available here"),
    ("hash-files-unavailable", "false || hashFiles('x')", 9, "hashFiles() is not available here"),
    ("always-unavailable", "!always()", 1, "always() is not available here"),
    (
        "format-missing-argument",
        "format('{0} {1}', 'a')",
        7,
        "format() placeholder {1} has no argument; 1 given after the format string",
    ),
    (
        "format-stray-open",
        "x || format('a{', 1)",
        12,
        "format() string has a stray '{' at position 1; use {0}, {1}... and write '{{' for a literal brace",
    ),
    (
        "format-stray-close",
        "format('}')",
        7,
        "format() string has a stray '}' at position 0; use {0}, {1}... and write '}}' for a literal brace",
    ),
    (
        "format-specifier",
        "format('{0:x}', 1)",
        7,
        "format() string has a stray '{' at position 0; use {0}, {1}... and write '{{' for a literal brace",
    ),
    (
        "format-name",
        "format('{a}', 1)",
        7,
        "format() string has a stray '{' at position 0; use {0}, {1}... and write '{{' for a literal brace",
    ),
    (
        "format-index-too-long",
        "format('{1000}', 1)",
        7,
        "format() string has a stray '{' at position 0; use {0}, {1}... and write '{{' for a literal brace",
    ),
    (
        "from-json-invalid",
        "fromJSON('{')",
        0,
        "fromJSON() input is not valid JSON: Expecting property name enclosed in double quotes "
        "at position 1",
    ),
    (
        "from-json-empty",
        "fromJSON('')",
        0,
        "fromJSON() input is not valid JSON: Expecting value at position 0",
    ),
    (
        "from-json-too-big",
        "fromJSON(matrix.big_json)",
        0,
        "fromJSON() input is 80003 characters; the limit is 65536",
    ),
    (
        "from-json-too-deep",
        "fromJSON(matrix.deep_json)",
        0,
        "fromJSON() input nests deeper than 64 levels",
    ),
    (
        "from-json-too-many-digits",
        "fromJSON(matrix.digits)",
        0,
        "fromJSON() input cannot be read: Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits",
    ),
    (
        "format-result-too-long",
        "format('{0}{0}', matrix.half)",
        0,
        "format() result would be longer than 1048576 characters",
    ),
    (
        "format-amplification",
        "format('" + "{0}" * 2000 + "', matrix.kilo)",
        0,
        "format() result would be longer than 1048576 characters",
    ),
    (
        "join-result-too-long",
        "join(fromJSON('[0, 0, 0]'), matrix.half)",
        0,
        "join() result would be longer than 1048576 characters",
    ),
    (
        "to-json-cycle",
        "1 && toJSON(matrix.cycle)",
        5,
        "value cannot be written as JSON: Circular reference detected",
    ),
    (
        "to-json-too-long",
        "toJSON(matrix.wide)",
        0,
        "toJSON() result would be longer than 1048576 characters",
    ),
]


@pytest.mark.parametrize(
    ("source", "offset", "message"),
    [case[1:] for case in EVAL_ERROR_CASES],
    ids=[case[0] for case in EVAL_ERROR_CASES],
)
def test_evaluation_errors(source: str, offset: int, message: str) -> None:
    error = error_of(source)
    assert (error.offset, error.message) == (offset, message)


FIND_ERROR_CASES = [
    ("unclosed", "a ${{ b", 2, "'${{' is never closed by '}}' (is a quote left open?)"),
    ("unclosed-quote", "${{ 'x }}", 0, "'${{' is never closed by '}}' (is a quote left open?)"),
    (
        "second-unclosed",
        "${{ a }} ${{ b",
        9,
        "'${{' is never closed by '}}' (is a quote left open?)",
    ),
    ("bad-inside", "x ${{ 1 + 2 }}", 8, "unexpected character '+'"),
    (
        "empty-inside",
        "x ${{ }}",
        6,
        "empty expression: expected a value such as true, 1, 'text' or matrix.seed",
    ),
    (
        "too-long-inside",
        "${{" + "a" * 8193 + "}}",
        3,
        "expression is 8193 characters long; the limit is 8192",
    ),
]


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [case[1:] for case in FIND_ERROR_CASES],
    ids=[case[0] for case in FIND_ERROR_CASES],
)
def test_find_expressions_errors(text: str, offset: int, message: str) -> None:
    for find in (find_expressions, lambda t: render(t, CTX)):
        with pytest.raises(ExpressionError) as caught:
            find(text)
        assert (caught.value.offset, caught.value.message) == (offset, message)


RENDER_ERROR_CASES = [
    ("unavailable-function", "a ${{ success() }}", 6, "success() is not available here"),
    (
        "cycle",
        "x: ${{ matrix.cycle }}",
        3,
        "value cannot be written as JSON: Circular reference detected",
    ),
    (
        "too-long",
        "${{ matrix.half }}${{ matrix.half }}",
        18,
        "rendered text would be longer than 1048576 characters",
    ),
]


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [case[1:] for case in RENDER_ERROR_CASES],
    ids=[case[0] for case in RENDER_ERROR_CASES],
)
def test_render_errors(text: str, offset: int, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        render(text, CTX)
    assert (caught.value.offset, caught.value.message) == (offset, message)


@pytest.mark.parametrize(
    "source",
    ["(" * 10_000, "!" * 10_000, "a" * 1_000_000, "'" + "x" * 1_000_000 + "'", "[" * 8000],
    ids=["parens-10k", "bangs-10k", "one-megabyte", "one-megabyte-string", "brackets-8k"],
)
def test_huge_sources_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError, match="limit is 8192|more than 2000 tokens"):
        parse_expression(source)


def test_long_chains_do_not_recurse() -> None:
    source = "!" * 1999 + "1"
    assert value_of(source) is False
    chain = " && ".join(["matrix.list"] * 500)
    assert value_of(chain) is SHARED_LIST
    assert len(references(parse_expression(chain))) == 500


def test_megabyte_text_scans() -> None:
    text = "x" * 500_000 + "${{ 1 }}" + "'" * 500_000
    assert [(e.start, e.end) for e in find_expressions(text)] == [(500_000, 500_008)]
    with pytest.raises(ExpressionError) as caught:
        find_expressions("${{ " + "'a' " * 250_000 + "}}")
    assert caught.value.offset == 3
    assert caught.value.message == "expression is 1000001 characters long; the limit is 8192"


EXPRESSION_PIECES = [
    *(" ", "matrix", "github", ".", "seed", "list", "obj", "half", "cycle", "huge", "[", "]"),
    *("(", ")", ",", "'x'", "'", "''", "'{0}'", "'{'", "'[1,2]'", "'{\"a\":1}'", "1", "-1"),
    *("0x1f", "1e3", "1.5", "NaN", "Infinity", "null", "true", "!", "==", "!=", "<", "<="),
    *(">", ">=", "&&", "||", "contains", "startsWith", "endsWith", "format", "join"),
    *("toJSON", "fromJSON", "success", "hashFiles", "cancelled", "{", "}", '"', "$", "*"),
    *("${{", "}}", "=", "-", "é", "\n"),
]
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "success": lambda: True,
    "failure": lambda: False,
    "hashfiles": lambda *patterns: "h",
}
EXPRESSION_LIKE = st.lists(st.sampled_from(EXPRESSION_PIECES), max_size=40).map("".join)


def outcome(action: Callable[[], Any]) -> Any:
    """What `action` returns, or the ExpressionError it raises; any other error fails the test."""
    try:
        return action()
    except ExpressionError as error:
        return error


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), EXPRESSION_LIKE))
def test_arbitrary_text_gives_expressions_or_expression_error(text: str) -> None:
    found = outcome(lambda: find_expressions(text))
    if isinstance(found, ExpressionError):
        assert 0 <= found.offset <= len(text)
    else:
        for embedded in found:
            assert text[embedded.start : embedded.end] == "${{" + embedded.source + "}}"
    source, offset = condition_source(text)
    assert text[offset : offset + len(source)] == source
    condition = outcome(lambda: evaluate_condition(text, EvalContext(CONTEXTS, FUNCTIONS)))
    assert isinstance(condition, bool | ExpressionError)


@settings(max_examples=300, deadline=None)
@given(EXPRESSION_LIKE)
def test_expression_like_text_parses_and_evaluates_or_raises_expression_error(source: str) -> None:
    tree = outcome(lambda: parse_expression(source, base_offset=7))
    if isinstance(tree, ExpressionError):
        assert 7 <= tree.offset <= 7 + len(source)
        return
    offsets = [ref.offset for ref in references(tree)] + [o for _, o in functions_called(tree)]
    assert all(7 <= offset < 7 + len(source) for offset in offsets)
    value = outcome(lambda: evaluate(tree, EvalContext(CONTEXTS, FUNCTIONS)))
    if isinstance(value, ExpressionError):
        assert 7 <= value.offset < 7 + len(source)
        return
    text = outcome(lambda: to_text(value))
    assert isinstance(text, str) or text.offset == 0


@settings(max_examples=300, deadline=None)
@given(EXPRESSION_LIKE)
def test_rendering_expression_like_text_gives_text_or_expression_error(text: str) -> None:
    for only in (None, ["matrix"]):
        rendered = outcome(partial(render, text, EvalContext(CONTEXTS, FUNCTIONS), only=only))
        if isinstance(rendered, ExpressionError):
            assert 0 <= rendered.offset <= len(text)
        else:
            assert isinstance(rendered, str)
