"""The format's docs match the code: action-spec/README.md and action-spec/examples/.

- every example workflow loads, says what it shows, is listed in the README, and points
  editors at the committed JSON Schema;
- every key of the JSON Schema has a row in the README's reference tables, and every row
  there names a key of the schema (or a `<placeholder>` for a name the author picks);
- every complete workflow in a fenced ```yaml block of the README (one with a top-level
  `jobs:`) loads, and every block that shows a mistake produces exactly its error;
- editors using the committed schema accept the examples and the README's workflows.

A mistake block starts with `# error: <line>:<column>: <message>`; a long message goes on
over the following lines that start with `#   `, joined with one space. Line and column
count from 1 in the block as shown, comment lines included, as `labci validate` would
report them for a file holding the block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from labci_spec import SpecErrors, load_workflow, workflow_json_schema

SPEC_DIR = Path(__file__).resolve().parents[2] / "action-spec"
README = SPEC_DIR / "README.md"
EXAMPLES = sorted((SPEC_DIR / "examples").glob("*.yml"))
SCHEMA_FILE = SPEC_DIR / "schema" / "labci-workflow.schema.json"

_FENCE = re.compile(r"^```yaml\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_ERROR = "# error: "
_MORE = "#   "
_ROW_KEY = re.compile(r"^\| `([^`]+)` \|")
_MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One fenced yaml block of the README."""

    line: int  # of the README, where the block's first line is
    text: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"

    @property
    def is_workflow(self) -> bool:
        return re.search(r"^jobs:", self.text, re.MULTILINE) is not None

    @property
    def expected_error(self) -> str | None:
        """The error a mistake block claims, from its `# error:` comment lines."""
        lines = self.text.splitlines()
        if not lines or not lines[0].startswith(_ERROR):
            return None
        parts = [lines[0].removeprefix(_ERROR)]
        for line in lines[1:]:
            if not line.startswith(_MORE):
                break
            parts.append(line.removeprefix(_MORE).strip())
        return " ".join(parts)


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for match in _FENCE.finditer(text)
    ]


WORKFLOW_BLOCKS = [b for b in readme_blocks() if b.is_workflow and b.expected_error is None]
MISTAKE_BLOCKS = [b for b in readme_blocks() if b.expected_error is not None]


def schema_keys(node: Any) -> Iterator[str]:
    """Every property name anywhere in a JSON Schema: under `properties`, in `$defs`,
    and inside `anyOf`, `items` and the like."""
    if isinstance(node, dict):
        yield from node.get("properties", {})
        for value in node.values():
            yield from schema_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from schema_keys(item)


def reference_rows() -> set[str]:
    """The keys named in the first column of the tables of the README's Reference section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Reference\n", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for line in section.splitlines() if (m := _ROW_KEY.match(line))}


def schema_problems(text: str) -> list[str]:
    """What an editor using the committed JSON Schema would flag in a workflow."""
    data = yaml.safe_load(text)
    # PyYAML reads YAML 1.1, where the key `on` is the boolean true; labci reads YAML 1.2.
    data["on"] = data.pop(True, data.get("on"))
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text("utf-8")))
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(data)]


SCHEMA_KEYS = sorted(set(schema_keys(workflow_json_schema())))
ROWS = sorted(reference_rows())

EDITOR_CASES = [(p.name, p.read_text(encoding="utf-8")) for p in EXAMPLES] + [
    (b.id, b.text) for b in WORKFLOW_BLOCKS
]


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_loads(example: Path) -> None:
    load_workflow(example.read_text(encoding="utf-8"), f".labci/{example.name}")


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_says_what_it_shows_and_is_listed(example: Path) -> None:
    text = example.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any(line.startswith("# Shows: ") for line in header), "header lacks '# Shows: '"
    assert f"(examples/{example.name})" in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_schema_line_points_at_the_schema(example: Path) -> None:
    match = _MODELINE.search(example.read_text(encoding="utf-8"))
    assert match is not None
    assert (example.parent / match.group(1)).resolve() == SCHEMA_FILE
    assert SCHEMA_FILE.is_file()


def test_the_examples_cover_the_issue() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "pytorch-seeds.yml",
        "cpu-eval.yml",
        "benchmark-needs.yml",
        "dispatch-sweep.yml",
        "cache-data.yml",
    } <= names


@pytest.mark.parametrize("key", SCHEMA_KEYS, ids=SCHEMA_KEYS)
def test_schema_key_has_a_reference_row(key: str) -> None:
    assert key in ROWS, f"no row for `{key}` in the Reference section of action-spec/README.md"


@pytest.mark.parametrize("key", ROWS, ids=ROWS)
def test_reference_row_names_a_schema_key(key: str) -> None:
    assert key in SCHEMA_KEYS or re.fullmatch(r"<[a-z]+>", key), f"`{key}` is not in the schema"


@pytest.mark.parametrize("block", WORKFLOW_BLOCKS, ids=[b.id for b in WORKFLOW_BLOCKS])
def test_readme_workflow_loads(block: Block) -> None:
    load_workflow(block.text, ".labci/readme.yml")


@pytest.mark.parametrize(("name", "text"), EDITOR_CASES, ids=[n for n, _ in EDITOR_CASES])
def test_editors_accept_what_the_docs_show(name: str, text: str) -> None:
    assert schema_problems(text) == []


@pytest.mark.parametrize("block", MISTAKE_BLOCKS, ids=[b.id for b in MISTAKE_BLOCKS])
def test_readme_mistake_gives_its_error(block: Block) -> None:
    with pytest.raises(SpecErrors) as caught:
        load_workflow(block.text, ".labci/readme.yml")
    found = [f"{e.line}:{e.column}: {e.message}" for e in caught.value.errors]
    assert found == [block.expected_error]


def test_readme_has_blocks_of_both_kinds() -> None:
    assert len(WORKFLOW_BLOCKS) >= 3
    assert len(MISTAKE_BLOCKS) >= 5
