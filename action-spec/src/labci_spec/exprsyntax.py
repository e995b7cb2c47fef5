"""The syntax of `${{ }}` expressions: text to tokens to tree (see labci_spec.expressions).

This is the first code that untrusted workflow text meets, so it enforces the
size limits before anything else runs: the source length, then the token count
while lexing, then the nesting depth while parsing. Only `(`, `[` and calls
recurse, and they are bounded; every chain of operators is a loop, and a chain
becomes one node, so later walks over the tree cannot exhaust the stack either.
Every rejection is an `ExpressionError` whose offset is where the offending
character or token starts, shifted by `base_offset` so the caller can place it
in the surrounding text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from labci_spec.errors import ExpressionError

MAX_SOURCE_CHARS = 8 * 1024
MAX_TOKENS = 2_000
MAX_DEPTH = 32

TokenKind = Literal["number", "string", "name", "punct", "end"]
Number = int | float

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)")
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]+")
_PUNCT_2 = frozenset({"<=", ">=", "==", "!=", "&&", "||"})
_PUNCT_1 = frozenset("()[].,!<>")
_MAX_EXACT_INT = 2**53
_MAX_INT_DIGITS = 15
_MAX_HEX_DIGITS = 16
_BAD_CHARS = {
    '"': "strings use single quotes: write 'text', not \"text\"",
    "=": "unexpected '='; compare with '=='",
    "&": "unexpected '&'; 'and' is written '&&'",
    "|": "unexpected '|'; 'or' is written '||'",
    "$": "unexpected '$'; an expression cannot contain another '${{ }}'",
    "*": "unexpected '*'; object filters such as labels.*.name are not supported",
}
# lower-case name -> (name as GitHub documents it, fewest arguments, most or None)
FUNCTIONS: dict[str, tuple[str, int, int | None]] = {
    "contains": ("contains", 2, 2),
    "startswith": ("startsWith", 2, 2),
    "endswith": ("endsWith", 2, 2),
    "format": ("format", 1, None),
    "join": ("join", 1, 2),
    "tojson": ("toJSON", 1, 1),
    "fromjson": ("fromJSON", 1, 1),
    "success": ("success", 0, 0),
    "failure": ("failure", 0, 0),
    "always": ("always", 0, 0),
    "cancelled": ("cancelled", 0, 0),
    "hashfiles": ("hashFiles", 1, None),
}
_KEYWORDS: dict[str, None | bool | float] = {
    "null": None,
    "true": True,
    "false": False,
    "NaN": math.nan,
    "Infinity": math.inf,
}


@dataclass(frozen=True)
class Token:
    """One token. `value` is the parsed number or the unescaped string, else None."""

    kind: TokenKind
    text: str
    offset: int
    value: Number | str | None = None

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind == "end":
            return "the end of the expression"
        shown = self.text if len(self.text) <= 20 else self.text[:17] + "..."
        if self.kind == "punct":
            return f"'{shown}'"
        return f"{self.kind} {shown}" if self.kind != "name" else f"name '{shown}'"


def tokenize(source: str, base_offset: int = 0) -> list[Token]:
    """The tokens of `source`, ending with one "end" token; raises ExpressionError."""
    if len(source) > MAX_SOURCE_CHARS:
        raise ExpressionError(
            f"expression is {len(source)} characters long; the limit is {MAX_SOURCE_CHARS}",
            base_offset,
        )
    tokens: list[Token] = []
    index = 0
    while index < len(source):
        if source[index].isspace():
            index += 1
            continue
        if len(tokens) == MAX_TOKENS:
            raise ExpressionError(
                f"expression has more than {MAX_TOKENS} tokens; split it up",
                base_offset + index,
            )
        token = _next_token(source, index, base_offset)
        tokens.append(token)
        index += len(token.text)
    tokens.append(Token("end", "", base_offset + len(source)))
    return tokens


def _next_token(source: str, index: int, base_offset: int) -> Token:
    char = source[index]
    offset = base_offset + index
    if char == "'":
        return _string_token(source, index, base_offset)
    if (char.isascii() and char.isdigit()) or char == "-":
        return _number_token(source, index, base_offset)
    name = _NAME.match(source, index)
    if name:
        return Token("name", name.group(), offset)
    pair = source[index : index + 2]
    if pair in _PUNCT_2:
        return Token("punct", pair, offset)
    if char in _PUNCT_1:
        return Token("punct", char, offset)
    raise ExpressionError(_BAD_CHARS.get(char, f"unexpected character {char!r}"), offset)


def _string_token(source: str, index: int, base_offset: int) -> Token:
    """A single-quoted string; `''` inside it stands for one quote."""
    end = index + 1
    while True:
        end = source.find("'", end)
        if end < 0:
            raise ExpressionError(
                "string is never closed; add a ' (write '' for a quote inside it)",
                base_offset + index,
            )
        if source.startswith("''", end):
            end += 2
            continue
        raw = source[index : end + 1]
        return Token("string", raw, base_offset + index, raw[1:-1].replace("''", "'"))


def _number_token(source: str, index: int, base_offset: int) -> Token:
    offset = base_offset + index
    if source.startswith("-Infinity", index) and not _NUMBER_TAIL.match(source, index + 9):
        return Token("number", "-Infinity", offset, float("-inf"))
    match = _NUMBER.match(source, index)
    if match is None:
        raise ExpressionError("unexpected '-'; it can only start a number such as -1", offset)
    text = match.group()
    tail = _NUMBER_TAIL.match(source, match.end())
    if tail:
        bad = source[index : min(tail.end(), index + 24)]
        raise ExpressionError(f"invalid number '{bad}'; write e.g. 12, -1.5, 1e3 or 0xff", offset)
    return Token("number", text, offset, _number_value(text, offset))


def _number_value(text: str, offset: int) -> Number:
    """The value of a number literal: an int when it is exactly one, else a float."""
    digits = text.lstrip("-")
    sign = -1 if text.startswith("-") else 1
    if digits.startswith("0x"):
        if len(digits) - 2 > _MAX_HEX_DIGITS:
            raise ExpressionError(f"hex number has more than {_MAX_HEX_DIGITS} digits", offset)
        value = sign * int(digits[2:], 16)
        return value if abs(value) <= _MAX_EXACT_INT else float(value)
    if digits.isdigit() and len(digits) <= _MAX_INT_DIGITS:
        return int(text)
    return float(text)


@dataclass(frozen=True)
class Expr:
    """A node of a parsed expression; `offset` is where its text starts.

    Chains (`a || b || c`, `a == b != c`, `a.b[c].d`, `!!a`) are single nodes,
    not left-deep trees, so a tree is only a few levels deeper than the
    nesting limit and walking it can never exhaust the stack.
    """

    offset: int


@dataclass(frozen=True)
class Constant(Expr):
    value: None | bool | int | float | str


@dataclass(frozen=True)
class ContextName(Expr):
    """A bare identifier such as `matrix`: the root of a context lookup."""

    name: str


@dataclass(frozen=True)
class Access(Expr):
    """`target.a['b'][i]`: a str step is a `.name`, an Expr step an `[index]`."""

    target: Expr
    steps: tuple[str | Expr, ...]


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr
    count: int


@dataclass(frozen=True)
class Logical(Expr):
    op: str
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Comparison(Expr):
    first: Expr
    rest: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]


class _Parser:
    """Recursive descent over the tokens of one expression.

    Only `(`, `[` and calls recurse, and `_enter` bounds them to MAX_DEPTH; every
    chain of operators is a loop.
    """

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise ExpressionError(
                "empty expression: expected a value such as true, 1, 'text' or matrix.seed",
                self.peek().offset,
            )
        tree = self.either()
        token = self.peek()
        if token.kind != "end":
            raise ExpressionError(
                f"unexpected {token.describe()}; expected an operator such as == or &&",
                token.offset,
            )
        return tree

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind == "punct" and token.text in texts

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression nests deeper than {MAX_DEPTH} levels of (), [] and calls",
                token.offset,
            )

    def leave(self, closing: str, opened: str) -> None:
        token = self.peek()
        if not self.at(closing):
            raise ExpressionError(
                f"expected '{closing}' to close {opened}, found {token.describe()}", token.offset
            )
        self.take()
        self.depth -= 1

    def either(self) -> Expr:
        return self.logical("||", self.both)

    def both(self) -> Expr:
        return self.logical("&&", self.equality)

    def logical(self, op: str, operand: Callable[[], Expr]) -> Expr:
        operands = [operand()]
        while self.at(op):
            self.take()
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return Logical(operands[0].offset, op, tuple(operands))

    def equality(self) -> Expr:
        return self.comparison(("==", "!="), self.relation)

    def relation(self) -> Expr:
        return self.comparison(("<", "<=", ">", ">="), self.unary)

    def comparison(self, ops: tuple[str, ...], operand: Callable[[], Expr]) -> Expr:
        first = operand()
        rest: list[tuple[str, Expr]] = []
        while self.at(*ops):
            op = self.take().text
            rest.append((op, operand()))
        return Comparison(first.offset, first, tuple(rest)) if rest else first

    def unary(self) -> Expr:
        bangs: list[Token] = []
        while self.at("!"):
            bangs.append(self.take())
        operand = self.postfix()
        return Not(bangs[0].offset, operand, len(bangs)) if bangs else operand

    def postfix(self) -> Expr:
        target = self.primary()
        steps: list[str | Expr] = []
        while self.at(".", "["):
            opener = self.take()
            if opener.text == "[":
                self.enter(opener)
                steps.append(self.either())
                self.leave("]", "'['")
                continue
            name = self.take()
            if name.kind != "name":
                raise ExpressionError(
                    f"expected a property name after '.', found {name.describe()}", name.offset
                )
            steps.append(name.text)
        if not steps:
            return target
        if isinstance(target, Access):
            return Access(target.offset, target.target, target.steps + tuple(steps))
        return Access(target.offset, target, tuple(steps))

    def primary(self) -> Expr:
        token = self.take()
        if token.kind in ("number", "string"):
            return Constant(token.offset, token.value)
        if token.kind == "name":
            if self.at("("):
                return self.call(token)
            if token.text in _KEYWORDS:
                return Constant(token.offset, _KEYWORDS[token.text])
            return ContextName(token.offset, token.text)
        if token.kind == "punct" and token.text == "(":
            self.enter(token)
            inner = self.either()
            self.leave(")", "'('")
            return inner
        raise ExpressionError(f"expected a value, found {token.describe()}", token.offset)

    def call(self, name: Token) -> Call:
        key = name.text.lower()
        spec = FUNCTIONS.get(key)
        if spec is None:
            known = ", ".join(shown for shown, _, _ in FUNCTIONS.values())
            raise ExpressionError(f"unknown function '{name.text}'; use {known}", name.offset)
        self.enter(self.take())
        args: list[Expr] = []
        if not self.at(")"):
            args.append(self.either())
            while self.at(","):
                self.take()
                args.append(self.either())
        self.leave(")", f"{spec[0]}(")
        _check_arity(spec, len(args), name.offset)
        return Call(name.offset, key, tuple(args))


def parse(source: str, base_offset: int = 0) -> Expr:
    """The tree of `source`; offsets in it and in errors are `base_offset` + position."""
    return _Parser(tokenize(source, base_offset)).parse()


def _check_arity(spec: tuple[str, int, int | None], count: int, offset: int) -> None:
    shown, fewest, most = spec
    if fewest <= count and (most is None or count <= most):
        return
    if most is None:
        wanted = f"at least {fewest}"
    elif fewest == most:
        wanted = str(fewest)
    else:
        wanted = f"{fewest} or {most}"
    noun = "argument" if wanted.endswith(" 1") or wanted == "1" else "arguments"
    raise ExpressionError(f"{shown}() takes {wanted} {noun}, got {count}", offset)


def closing_braces(text: str, start: int) -> int:
    """Where the `}}` closing an expression begins, skipping quoted strings; -1 if none.

    Each search moves forward, so a text full of quotes is still scanned in linear time.
    """
    position = start
    close = text.find("}}", position)
    while close >= 0:
        quote = text.find("'", position, close)
        if quote < 0:
            return close
        end_quote = text.find("'", quote + 1)
        if end_quote < 0:
            return -1
        position = end_quote + 1
        if close < position:
            close = text.find("}}", position)
    return -1
