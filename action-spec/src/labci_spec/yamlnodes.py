"""Safe YAML composition: text to a node tree whose every node keeps its position.

We compose (not construct) so that nothing is interpreted before the loader
looks at it: `on` stays a string key instead of YAML 1.1's boolean True, and
each value still knows its line and column for error messages. The composer
refuses anchors and aliases (an alias bomb can then never expand) and nesting
deeper than `MAX_DEPTH`, which also keeps the recursive composer far from
Python's recursion limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 64
STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"
# Scalars whose source text is a usable string: `name: 1.0` means "1.0".
TEXT_TAGS = frozenset({STR_TAG, INT_TAG, "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"})
_DESCRIBE_CHARS = 40
_MAX_INT_CHARS = 20


class NodeError(Exception):
    """The text is not YAML we accept; `line` and `column` are 1-based."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


class _NodeLoader(yaml.SafeLoader):
    def __init__(self, text: str) -> None:
        super().__init__(text)
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
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = exc.problem or exc.context or "not a valid document"
    if exc.problem and exc.context:  # "while scanning a quoted scalar at line 4, found ..."
        where = ""
        if exc.context_mark and exc.context_mark.line + 1 != line:
            where = f" at line {exc.context_mark.line + 1}"
        message = f"{exc.context}{where}, {exc.problem}"
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


def is_true(node: ScalarNode) -> bool:
    """Whether a `tag:yaml.org,2002:bool` scalar is true (YAML 1.1: yes/true/on)."""
    return str(node.value).lower() in ("yes", "true", "on")


def yaml_int(node: Node) -> int | None:
    """The value of a YAML 1.1 integer scalar (`30`, `0x1e`, `1_000`), or None.

    Sexagesimal (`1:30`) and very long numbers are refused rather than computed.
    """
    if not isinstance(node, ScalarNode) or node.tag != INT_TAG:
        return None
    text = str(node.value).replace("_", "")
    if len(text) > _MAX_INT_CHARS or ":" in text:
        return None
    try:
        if re.fullmatch(r"[-+]?0[0-7]+", text):
            return int(text, 8)
        return int(text, 0)
    except ValueError:
        return None
