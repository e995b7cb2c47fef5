"""Load a workflow file (YAML text) into a `Workflow`, reporting every problem with its place.

`load_workflow` never raises anything but `SpecErrors`: raw-byte problems (size,
encoding, NUL) are reported at 1:1 without parsing; YAML syntax problems at the
mark the parser gives; schema problems at the key or value concerned, all of
them at once, in file order. Nothing here reads files: the caller passes text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from labci_spec.errors import SpecError, SpecErrors
from labci_spec.model import (
    ENV_NAME_PATTERN,
    JOB_ID_PATTERN,
    MAX_TIMEOUT_MINUTES,
    MIN_TIMEOUT_MINUTES,
    Workflow,
    metrics_file_problem,
)
from labci_spec.yamlnodes import (
    BOOL_TAG,
    NULL_TAG,
    NodeError,
    compose_nodes,
    describe,
    is_text,
    is_true,
    yaml_int,
)

MAX_WORKFLOW_BYTES = 1024 * 1024
EVENTS = ("push", "pull_request")
WORKFLOW_KEYS = ("name", "on", "env", "jobs")
JOB_KEYS = ("name", "runs-on", "env", "timeout-minutes", "steps", "metrics")
STEP_KEYS = ("name", "run", "env")


def load_workflow(text: str | bytes, path: str) -> Workflow:
    """Parse and validate one workflow file; `path` is used for messages and the default name."""
    decoded = _decode(text, path)
    try:
        root = compose_nodes(decoded)
    except NodeError as exc:
        raise SpecErrors([SpecError(path, exc.line, exc.column, exc.message)]) from exc
    if not isinstance(root, MappingNode):
        got = "an empty file" if root is None else describe(root)
        raise SpecErrors([SpecError(path, 1, 1, f"expected a mapping at the top level, got {got}")])
    reader = _Reader(path)
    data = reader.workflow(root)
    if reader.errors:
        raise SpecErrors(sorted(reader.errors, key=lambda e: (e.line, e.column)))
    try:
        return Workflow.model_validate(data)
    except ValidationError as exc:  # the reader checks every rule first; this is a safety net
        errors = [_pydantic_error(path, error) for error in exc.errors()]
        raise SpecErrors(errors) from exc


def _decode(text: str | bytes, path: str) -> str:
    def fail(message: str) -> SpecErrors:
        return SpecErrors([SpecError(path, 1, 1, message)])

    too_big = f"file is larger than {MAX_WORKFLOW_BYTES} bytes"
    if len(text) > MAX_WORKFLOW_BYTES:
        raise fail(too_big)
    try:
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as exc:
        raise fail("file contains characters that cannot be encoded as UTF-8") from exc
    if len(data) > MAX_WORKFLOW_BYTES:
        raise fail(too_big)
    if b"\x00" in data:
        raise fail("file contains a NUL byte; workflow files must be UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = f"0x{data[exc.start]:02x}"
        raise fail(f"file is not valid UTF-8 (byte {byte} at offset {exc.start})") from exc


def _pydantic_error(path: str, error: Any) -> SpecError:
    where = ".".join(str(part) for part in error["loc"])
    return SpecError(path, 1, 1, f"{where}: {error['msg']}")


def _hint(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (expected one of: {', '.join(known)})"


@dataclass
class _Reader:
    """Walks the node tree, returning plain data for the models and collecting errors."""

    path: str
    errors: list[SpecError] = field(default_factory=list)

    def fail(self, node: Node, where: str, message: str) -> None:
        mark = node.start_mark
        text = f"{where}: {message}" if where else message
        self.errors.append(SpecError(self.path, mark.line + 1, mark.column + 1, text))

    def expect(self, node: Node, where: str, expected: str) -> None:
        self.fail(node, where, f"expected {expected}, got {describe(node)}")

    def entries(self, node: Node, where: str) -> list[tuple[str, Node, Node]]:
        """The key/value pairs of a mapping, with string keys and no duplicates."""
        if not isinstance(node, MappingNode):
            self.expect(node, where, "a mapping")
            return []
        seen: dict[str, Node] = {}
        pairs = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.expect(key_node, where, "a string key")
                continue
            key = str(key_node.value)
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.fail(key_node, where, f"duplicate key '{key}' (first defined on line {first})")
                continue
            seen[key] = key_node
            pairs.append((key, key_node, value_node))
        return pairs

    def fields(
        self, node: Node, where: str, known: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Node]:
        """The known keys of a mapping; unknown keys and missing required keys are errors."""
        found: dict[str, Node] = {}
        hinted = set()
        for key, key_node, value_node in self.entries(node, where):
            if key in known:
                found[key] = value_node
            else:
                hint = _hint(key, known)
                hinted.add(hint)
                self.fail(key_node, where, f"unknown key '{key}'{hint}")
        if isinstance(node, MappingNode):
            for key in required:  # no "missing 'runs-on'" after "did you mean 'runs-on'?"
                if key not in found and _hint(key, (key,)) not in hinted:
                    self.fail(node, where, f"missing required key '{key}'")
        return found

    def text(self, node: Node, where: str) -> str | None:
        if not is_text(node):
            self.expect(node, where, "a string")
            return None
        value = str(node.value)
        if "\x00" in value:
            self.fail(node, where, "must not contain a NUL character")
            return None
        if not value.strip():
            self.fail(node, where, "must not be empty")
            return None
        return value

    def texts(self, node: Node, where: str) -> list[str]:
        """A string, or a non-empty list of strings, as a list."""
        if not isinstance(node, SequenceNode):
            value = self.text(node, where)
            return [] if value is None else [value]
        if not node.value:
            self.expect(node, where, "a string or a non-empty list of strings")
        values = [self.text(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
        return [value for value in values if value is not None]

    def env(self, node: Node, where: str) -> dict[str, str]:
        result: dict[str, str] = {}
        for name, key_node, value_node in self.entries(node, where):
            if not re.match(ENV_NAME_PATTERN, name):
                self.fail(
                    key_node,
                    where,
                    f"invalid variable name '{name}' (use letters, digits and '_',"
                    " not starting with a digit)",
                )
            elif isinstance(value_node, ScalarNode) and value_node.tag == BOOL_TAG:
                result[name] = "true" if is_true(value_node) else "false"
            elif not is_text(value_node):
                self.expect(value_node, f"{where}.{name}", "a string, number or boolean")
            elif "\x00" in str(value_node.value):
                self.fail(value_node, f"{where}.{name}", "must not contain a NUL character")
            else:
                result[name] = str(value_node.value)
        return result

    def timeout(self, node: Node, where: str) -> int | None:
        low, high = MIN_TIMEOUT_MINUTES, MAX_TIMEOUT_MINUTES
        value = yaml_int(node)
        if value is None or not low <= value <= high:
            self.expect(node, where, f"an integer between {low} and {high}")
            return None
        return value

    def workflow(self, node: MappingNode) -> dict[str, Any]:
        found = self.fields(node, "", WORKFLOW_KEYS, required=("on", "jobs"))
        data: dict[str, Any] = {"path": self.path, "name": PurePosixPath(self.path).stem}
        if "name" in found:
            data["name"] = self.text(found["name"], "name")
        if "on" in found:
            data["on"] = self.triggers(found["on"])
        if "env" in found:
            data["env"] = self.env(found["env"], "env")
        if "jobs" in found:
            data["jobs"] = self.jobs(found["jobs"])
        return data

    def triggers(self, node: Node) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if isinstance(node, MappingNode):
            for _, key_node, value_node in self.entries(node, "on"):
                name = self.event(key_node, "on")
                if name:
                    result[name] = self.branch_filter(value_node, f"on.{name}")
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                name = self.event(item, f"on[{i}]")
                if name in result:
                    self.fail(item, f"on[{i}]", f"event '{name}' is listed twice")
                elif name:
                    result[name] = {}
        else:
            name = self.event(node, "on")
            if name:
                result[name] = {}
        if not result and isinstance(node, MappingNode | SequenceNode) and not node.value:
            self.expect(node, "on", f"at least one of {', '.join(EVENTS)}")
        return result

    def event(self, node: Node, where: str) -> str | None:
        name = self.text(node, where)
        if name is not None and name not in EVENTS:
            self.fail(node, where, f"unknown event '{name}'{_hint(name, EVENTS)}")
            return None
        return name

    def branch_filter(self, node: Node, where: str) -> dict[str, Any]:
        if isinstance(node, ScalarNode) and node.tag == NULL_TAG:
            return {}
        found = self.fields(node, where, ("branches",))
        if "branches" in found:
            return {"branches": self.texts(found["branches"], f"{where}.branches")}
        return {}

    def jobs(self, node: Node) -> dict[str, Any]:
        pairs = self.entries(node, "jobs")
        if isinstance(node, MappingNode) and not node.value:
            self.expect(node, "jobs", "at least one job")
        result = {}
        for job_id, key_node, value_node in pairs:
            if not re.match(JOB_ID_PATTERN, job_id):
                self.fail(
                    key_node,
                    "jobs",
                    f"invalid job id '{job_id}' (use letters, digits, '_' and '-',"
                    " starting with a letter or '_')",
                )
            result[job_id] = self.job(value_node, f"jobs.{job_id}", job_id)
        return result

    def job(self, node: Node, where: str, job_id: str) -> dict[str, Any]:
        found = self.fields(node, where, JOB_KEYS, required=("runs-on", "steps"))
        data: dict[str, Any] = {"id": job_id}
        if "name" in found:
            data["name"] = self.text(found["name"], f"{where}.name")
        if "runs-on" in found:
            data["runs_on"] = self.texts(found["runs-on"], f"{where}.runs-on")
        if "env" in found:
            data["env"] = self.env(found["env"], f"{where}.env")
        if "timeout-minutes" in found:
            timeout = found["timeout-minutes"]
            data["timeout_minutes"] = self.timeout(timeout, f"{where}.timeout-minutes")
        if "steps" in found:
            data["steps"] = self.steps(found["steps"], f"{where}.steps")
        if "metrics" in found:
            data["metrics"] = self.metrics(found["metrics"], f"{where}.metrics")
        return data

    def steps(self, node: Node, where: str) -> list[dict[str, Any]]:
        if not isinstance(node, SequenceNode) or not node.value:
            self.expect(node, where, "a non-empty list of steps")
            return []
        return [self.step(item, f"{where}[{i}]") for i, item in enumerate(node.value)]

    def step(self, node: Node, where: str) -> dict[str, Any]:
        found = self.fields(node, where, STEP_KEYS, required=("run",))
        data: dict[str, Any] = {}
        if "name" in found:
            data["name"] = self.text(found["name"], f"{where}.name")
        if "run" in found:
            data["run"] = self.text(found["run"], f"{where}.run")
        if "env" in found:
            data["env"] = self.env(found["env"], f"{where}.env")
        return data

    def metrics(self, node: Node, where: str) -> dict[str, Any]:
        found = self.fields(node, where, ("file",), required=("file",))
        if "file" not in found:
            return {}
        file = self.text(found["file"], f"{where}.file")
        problem = None if file is None else metrics_file_problem(file)
        if problem is not None:
            self.fail(found["file"], f"{where}.file", f"{problem}, got {describe(found['file'])}")
        return {"file": file}
