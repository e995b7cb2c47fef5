"""The published JSON Schema of a workflow file, generated from the models.

The committed copy lives at `action-spec/schema/labci-workflow.schema.json`; a test fails
when it and the models disagree. Regenerate it with

    python -m labci_spec schema action-spec/schema/labci-workflow.schema.json

Editors that speak the YAML language server use it through a first line such as
`# yaml-language-server: $schema=<url or path of the schema>`. The schema describes the
shape of a file; the loader checks more (expressions, `needs`, matrix size) and says where.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from labci_spec.model import Workflow

SCHEMA_ID = "https://labci.dev/schema/labci-workflow.schema.json"
SCHEMA_FILE = "labci-workflow.schema.json"


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a `.labci/*.yml` file."""
    schema = Workflow.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "labci workflow",
        "description": "A labci workflow file (.labci/*.yml): GitHub Actions syntax for experiments.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text() -> str:
    return json.dumps(workflow_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = schema_text()
    if not args:
        sys.stdout.write(text)
        return 0
    with open(args[0], "w", encoding="utf-8") as out:
        out.write(text)
    return 0
