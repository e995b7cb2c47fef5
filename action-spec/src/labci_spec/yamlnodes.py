"""Safe YAML composition: text to a node tree whose every node keeps its position.

We compose (not construct) so that nothing is interpreted before the loader
looks at it, and each value still knows its line and column for error messages.
Scalars are resolved as in YAML 1.2's core schema, like GitHub Actions: `on`,
`yes` and `no` are strings, only `true`/`false` are booleans. The composer
refuses anchors and aliases (an alias bomb can then never expand) and nesting
deeper than `MAX_DEPTH`, which also keeps the recursive composer far from
Python's recursion limit.

`to_data` turns the tree into plain Python values and remembers, for every
location (a tuple of keys and indexes), the nodes it came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

MAX_DEPTH = 64
STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"
FLOAT_TAG = "tag:yaml.org,2002:float"
# Scalars whose source text is a usable string: `name: 1.0` means "1.0".
TEXT_TAGS = frozenset({STR_TAG, INT_TAG, FLOAT_TAG})
_DESCRIBE_CHARS = 40
_MAX_INT_CHARS = 20


class NodeError(Exception):
    """The text is not YAML we accept; `line` and `column` are 1-based."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


class _CoreResolver(BaseResolver):
    """YAML 1.2 core schema: the implicit types GitHub Actions' parser sees."""


_CoreResolver.add_implicit_resolver(
    BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreResolver.add_implicit_resolver(
    INT_TAG, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_CoreResolver.add_implicit_resolver(
    FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_CoreResolver.add_implicit_resolver(
    NULL_TAG, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


class _NodeLoader(Reader, Scanner, Parser, Composer, _CoreResolver):
    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreResolver.__init__(self)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _refusal(event.start_mark, "anchors and aliases are not supported")
        if self.depth >= MAX_DEPTH:
            message = f"nesting deeper than {MAX_DEPTH} levels is not supported"
            raise _refusal(event.start_mark, message)
        self.depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1


def _refusal(mark: yaml.Mark, message: str) -> NodeError:
    return NodeError(mark.line + 1, mark.column + 1, message)


def compose_nodes(text: str) -> Node | None:
    """The single document in `text` as a node tree, or None if it is empty."""
    loader: _NodeLoader | None = None
    try:
        loader = _NodeLoader(text)  # checks for unprintable characters already
        return loader.get_single_node()  # type: ignore[no-any-return]
    except yaml.MarkedYAMLError as exc:
        raise _marked_error(exc) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else 0
        message = f"invalid YAML: control character U+{code:04X} is not allowed"
        raise NodeError(line, column, message) from exc
    except yaml.YAMLError as exc:
        raise NodeError(1, 1, f"invalid YAML: {exc}") from exc
    finally:
        if loader is not None:
            loader.dispose()


def _marked_error(exc: yaml.MarkedYAMLError) -> NodeError:
    if exc.context == "while scanning a quoted scalar" and exc.context_mark is not None:
        mark = exc.context_mark  # where the quote opens, not where the file ends
        message = "invalid YAML: this quoted string is never closed"
        return NodeError(mark.line + 1, mark.column + 1, message)
    if exc.problem and exc.problem.startswith("expected <block end>") and exc.problem_mark:
        mark = exc.problem_mark  # PyYAML's words for a line indented unlike its siblings
        message = "invalid YAML: this line's indentation does not match the lines above it"
        return NodeError(mark.line + 1, mark.column + 1, message)
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = exc.problem or exc.context or "not a valid document"
    if exc.problem and exc.context:  # "while scanning a quoted scalar at line 4, found ..."
        where = ""
        if exc.context_mark and exc.context_mark.line + 1 != line:
            where = f" at line {exc.context_mark.line + 1}"
        message = f"{exc.context}{where}, {exc.problem}"
    if exc.problem == "mapping values are not allowed here":
        message += " (a line indented deeper than the one above, or ': ' in an unquoted value?)"
    if "'\\t'" in message:
        message += " (indent with spaces: YAML does not allow tabs there)"
    return NodeError(line, column, f"invalid YAML: {message}")


def describe(node: Node) -> str:
    """What a node holds, for "expected X, got Y" messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    value = str(node.value)
    if not str(node.tag).startswith("tag:yaml.org,2002:"):
        return f"a value tagged {node.tag}"
    if node.tag == STR_TAG:
        if len(value) > _DESCRIBE_CHARS:
            value = value[: _DESCRIBE_CHARS - 3] + "..."
        return json.dumps(value, ensure_ascii=False)
    if len(value) > _DESCRIBE_CHARS:
        return value[: _DESCRIBE_CHARS - 3] + "..."
    return value or "null"


def is_text(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag in TEXT_TAGS


def yaml_int(node: Node) -> int | None:
    """The value of a YAML 1.2 integer scalar (`30`, `0o17`, `0x1e`), or None.

    Very long numbers are refused rather than computed.
    """
    if not isinstance(node, ScalarNode) or node.tag != INT_TAG:
        return None
    text = str(node.value)
    if len(text) > _MAX_INT_CHARS:
        return None
    try:
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)
    except ValueError:
        return None


Location = tuple[str | int, ...]


@dataclass(frozen=True)
class Place:
    """Where a value came from: its node, and for a mapping entry the key's node too."""

    value: Node
    key: Node | None = None


@dataclass
class Data:
    """Plain Python values of a document, the place of every location, and what was refused."""

    value: Any = None
    places: dict[Location, Place] = field(default_factory=dict)
    errors: list[NodeError] = field(default_factory=list)
    text: str = ""

    def position_in_scalar(self, loc: Location, offset: int) -> tuple[int, int]:
        """1-based line and column, in the file, of character `offset` of a scalar's value.

        A block scalar's value has lost its indentation and a quoted one its escapes, so
        the place is found by looking for the text from `offset` to the end of its line
        in the scalar's source; when that fails, the scalar's own start is the answer.
        """
        node = self.places[loc].value
        mark = node.start_mark
        fallback = (mark.line + 1, mark.column + 1)
        value = str(getattr(node, "value", ""))
        snippet = value[offset:].split("\n", 1)[0][:40]
        if not snippet or offset > len(value):
            return fallback
        source = self.text[mark.index : node.end_mark.index]
        position = -1
        for _ in range(value[:offset].count(snippet) + 1):
            position = source.find(snippet, position + 1)
            if position < 0:
                return fallback
        index = mark.index + position
        line = self.text.count("\n", 0, index) + 1
        return line, index - (self.text.rfind("\n", 0, index) + 1) + 1

    def find(self, loc: Location) -> tuple[Location, Place]:
        """The deepest known location along `loc`, and its place.

        Parts that name no node are skipped rather than ending the walk: models
        normalise some shapes (`on: push`, a matrix's axes), so a validation error's
        location can hold steps that the YAML does not.
        """
        found: Location = ()
        for part in loc:
            candidate = (*found, part)
            if candidate in self.places:
                found = candidate
        return found, self.places[found]


def to_data(root: Node, text: str = "") -> Data:
    """Plain values: mappings with string keys, lists, str, int, bool, None.

    Floats keep their source text (`3.10` stays "3.10", where GitHub Actions famously
    turns it into 3.1); they still compare as numbers in expressions, and fields that
    want a number parse the text. Duplicate keys, non-scalar keys and custom tags are
    collected as errors; the offending entry is left out.
    """
    data = Data(text=text)
    data.places[()] = Place(root)
    data.value = _convert(root, (), data)
    return data


def _convert(node: Node, loc: Location, data: Data) -> Any:
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                data.errors.append(_error(key_node, "mapping keys must be plain strings"))
                continue
            key = str(key_node.value)
            if key in first_line:
                message = f"duplicate key '{key}' (first defined on line {first_line[key]})"
                data.errors.append(_error(key_node, message))
                continue
            first_line[key] = key_node.start_mark.line + 1
            data.places[(*loc, key)] = Place(value_node, key_node)
            result[key] = _convert(value_node, (*loc, key), data)
        return result
    if isinstance(node, SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            data.places[(*loc, index)] = Place(item)
            items.append(_convert(item, (*loc, index), data))
        return items
    return _scalar(node, data)


def _scalar(node: Node, data: Data) -> Any:
    text = str(node.value)
    if node.tag == STR_TAG:
        return text
    if node.tag == BOOL_TAG:
        return text.lower() == "true"
    if node.tag == NULL_TAG:
        return None
    if node.tag == INT_TAG:
        number = yaml_int(node)
        return text if number is None else number
    if node.tag == FLOAT_TAG:
        return text
    data.errors.append(_error(node, f"YAML tag {node.tag} is not supported"))
    return None


def _error(node: Node, message: str) -> NodeError:
    return NodeError(node.start_mark.line + 1, node.start_mark.column + 1, message)
