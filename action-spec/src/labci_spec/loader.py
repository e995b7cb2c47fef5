"""Load a workflow file (YAML text) into a `Workflow`, reporting every problem with its place.

    text ─decode─▶ str ─compose─▶ nodes ─to_data─▶ values + places ─models─▶ Workflow ─rules─▶ ok

`load_workflow` never raises anything but `SpecErrors`, and never reads files: the caller
passes text. Raw-byte problems (size, encoding, NUL) are reported at 1:1 without
parsing; YAML syntax problems where the parser stopped; schema problems (from the models)
at the key or value concerned; cross-field problems (from `labci_spec.rules`) likewise.
Schema and cross-field problems come in one pass, all of them, in file order: the rules
read every part of the file that validates on its own, so a typo hides nothing else.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError
from yaml.nodes import MappingNode

from labci_spec.errors import SpecError, SpecErrors
from labci_spec.messages import describe_validation_error
from labci_spec.model import Workflow
from labci_spec.rules import check_workflow
from labci_spec.yamlnodes import Data, NodeError, compose_nodes, describe, to_data

MAX_WORKFLOW_BYTES = 1024 * 1024
# Keys labci fills in itself; written in a file they are unknown keys.
_RESERVED = {(): "path", ("jobs", "*"): "id", ("jobs", "*", "metrics"): "max_repeats"}


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
    data = to_data(root, decoded)
    errors = [SpecError(path, e.line, e.column, e.message) for e in data.errors]
    errors += _reserved_keys(data, path)
    workflow: Workflow | None = None
    try:
        workflow = Workflow.model_validate(_with_derived_keys(data.value, path))
    except ValidationError as exc:
        described = (describe_validation_error(path, data, error) for error in exc.errors())
        yaml_places = {(e.line, e.column) for e in errors}
        errors += _without_echoes(
            [e for e in described if e is not None and (e.line, e.column) not in yaml_places]
        )
    # Cross-field rules run either way, on the pieces that validate: one pass, every error.
    errors += check_workflow(data, path)
    if errors or workflow is None:
        raise SpecErrors(_in_file_order(errors))
    return workflow


def _without_echoes(errors: list[SpecError]) -> list[SpecError]:
    """Drop "missing required key 'run'" where an unknown key of the same mapping already
    points there ("did you mean 'run'?", or "`uses`: put the commands in `run:`")."""
    kept = []
    for error in errors:
        prefix, _, message = error.message.rpartition(": missing required key ")
        key = message.strip("'")
        echoed = prefix and any(
            other.message.startswith(f"{prefix}: ")
            and (f"'{key}'?" in other.message or f"`{key}:`" in other.message)
            for other in errors
            if other is not error
        )
        if not echoed:
            kept.append(error)
    return kept


def _in_file_order(errors: list[SpecError]) -> list[SpecError]:
    unique = list(dict.fromkeys(errors))
    return sorted(unique, key=lambda e: (e.line, e.column))


def _with_derived_keys(value: dict[str, Any], path: str) -> dict[str, Any]:
    """The file's values plus what labci derives: its path, default name and job ids."""
    result = {**value, "path": path}
    result.setdefault("name", None)
    if result["name"] is None:
        result["name"] = PurePosixPath(path).stem
    jobs = result.get("jobs")
    if isinstance(jobs, dict):
        result["jobs"] = {
            key: {**job, "id": key} if isinstance(job, dict) else job for key, job in jobs.items()
        }
    return result


def _reserved_keys(data: Data, path: str) -> list[SpecError]:
    errors = []
    for loc, place in data.places.items():
        if place.key is None or not loc:
            continue
        parent = loc[:-1]
        in_a_job = len(parent) >= 2 and parent[0] == "jobs"
        pattern = ("jobs", "*", *parent[2:]) if in_a_job else parent
        if _RESERVED.get(pattern) == loc[-1]:
            mark = place.key.start_mark
            where = ".".join(str(p) for p in parent)
            prefix = f"{where}: " if where else ""
            message = f"{prefix}unknown key '{loc[-1]}'"
            errors.append(SpecError(path, mark.line + 1, mark.column + 1, message))
    return errors


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
