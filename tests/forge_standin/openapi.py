"""Check requests against GitHub's published REST description (npm ``@octokit/openapi``).

The description is loaded once per process (about 0.3 s for the 13 MB file). Path templates
are compiled up front; parameter and body schemas are resolved lazily, for the operations a
test actually hits, and cached.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema

STANDIN_DIR = Path(__file__).resolve().parent
OPENAPI_PACKAGE = STANDIN_DIR / "node_modules" / "@octokit" / "openapi"
OPENAPI_FILE = OPENAPI_PACKAGE / "generated" / "api.github.com.json"

_DOC_URI = "urn:labci:github-openapi"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM = re.compile(r"\{([^}/]+)\}")


class OpenAPINotInstalledError(RuntimeError):
    """The npm package with GitHub's REST description has not been installed."""


def require_installed(path: Path) -> Path:
    if not path.is_file():
        raise OpenAPINotInstalledError(
            f"{path} is missing: the forge stand-in needs the npm packages pinned in "
            "tests/forge_standin/package.json. Run `npm ci --prefix tests/forge_standin` "
            "from the repository root."
        )
    return path


@dataclass
class _Template:
    template: str
    regex: re.Pattern[str]
    literal_len: int
    multi_segment: int
    item: dict[str, Any]


@dataclass
class _Operation:
    template: str
    method: str
    operation_id: str
    path_params: dict[str, dict[str, Any]]
    query_params: dict[str, dict[str, Any]]
    body_required: bool
    body_schema: dict[str, Any] | None
    responses: dict[str, Any]
    _validator: Any = field(default=None, repr=False)


def _to_json_schema(node: Any) -> Any:
    """Turn an OpenAPI 3.0 schema object into draft-4 JSON Schema (``nullable`` -> null type)."""
    if isinstance(node, list):
        return [_to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "examples", "description", "x-github", "externalDocs", "title"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _to_json_schema(v) for k, v in value.items()}
        else:
            out[key] = _to_json_schema(value)
    if out.pop("nullable", False):
        if "$ref" in out:
            out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
        elif isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif "type" not in out and any(k in out for k in ("anyOf", "oneOf", "allOf")):
            out = {"anyOf": [out, {"type": "null"}]}
    return out


class OpenAPIChecker:
    """Validate what a client sends against ``@octokit/openapi``'s ``api.github.com.json``."""

    _cache: dict[Path, dict[str, Any]] = {}
    _cache_lock = threading.Lock()

    def __init__(self, spec_file: Path = OPENAPI_FILE) -> None:
        self.spec_file = require_installed(spec_file)
        with self._cache_lock:
            doc = self._cache.get(self.spec_file)
            if doc is None:
                full = json.loads(self.spec_file.read_bytes())
                # Keep what checks need; drop x-webhooks and the (large) example responses.
                components = {k: v for k, v in full["components"].items() if k != "examples"}
                doc = {"info": full["info"], "paths": full["paths"], "components": components}
                self._cache[self.spec_file] = doc
        self._doc = doc
        self.version: str = doc["info"]["version"]
        self._lock = threading.Lock()
        self._ops: dict[tuple[str, str], _Operation] = {}
        self._schemas: dict[str, Any] = {}  # converted components, filled lazily
        self._registry: referencing.Registry | None = None
        self._templates = [self._compile(t, item) for t, item in doc["paths"].items()]

    # -- path matching -------------------------------------------------------------------

    def _param(self, p: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in p:
            p = self._pointer(p["$ref"])
        return p

    def _pointer(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        node: Any = self._doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _compile(self, template: str, item: dict[str, Any]) -> _Template:
        multi: set[str] = set()
        for method in _METHODS:
            for p in item.get(method, {}).get("parameters", []):
                p = self._param(p) if "$ref" in p else p
                if p.get("in") == "path" and p.get("x-multi-segment"):
                    multi.add(p["name"])
        pattern = ""
        pos = 0
        for m in _PARAM.finditer(template):
            pattern += re.escape(template[pos : m.start()])
            name = m.group(1)
            group = re.sub(r"\W", "_", name)
            pattern += f"(?P<{group}>.+)" if name in multi else f"(?P<{group}>[^/]+)"
            pos = m.end()
        pattern += re.escape(template[pos:])
        literal = len(_PARAM.sub("", template))
        return _Template(template, re.compile(pattern + r"\Z"), literal, len(multi), item)

    def match(self, method: str, path: str) -> tuple[str | None, dict[str, str], list[str]]:
        """Return (template, path params, violations) for a concrete request path."""
        method = method.lower()
        found = [(t, m) for t in self._templates if (m := t.regex.match(path))]
        if not found:
            return None, {}, [f"{method.upper()} {path}: no path template in GitHub's REST API"]
        found.sort(key=lambda tm: (-tm[0].literal_len, tm[0].multi_segment))
        for t, m in found:
            if method in t.item:
                return t.template, m.groupdict(), []
        names = ", ".join(sorted({t.template for t, _ in found}))
        return None, {}, [f"{method.upper()} {path}: method not defined for {names}"]

    # -- operations ----------------------------------------------------------------------

    def operation(self, method: str, template: str) -> _Operation:
        key = (method.lower(), template)
        with self._lock:
            op = self._ops.get(key)
            if op is None:
                op = self._ops[key] = self._build_operation(*key)
            return op

    def _build_operation(self, method: str, template: str) -> _Operation:
        item = self._doc["paths"][template]
        raw = item[method]
        params = [self._param(p) for p in item.get("parameters", []) + raw.get("parameters", [])]
        body_required = False
        body_schema = None
        if "requestBody" in raw:
            rb = self._param(raw["requestBody"])
            body_required = bool(rb.get("required", False))
            content = rb.get("content", {})
            media = content.get("application/json") or next(iter(content.values()), {})
            if "schema" in media:
                body_schema = media["schema"]
        return _Operation(
            template=template,
            method=method,
            operation_id=raw.get("operationId", f"{method} {template}"),
            path_params={p["name"]: p for p in params if p.get("in") == "path"},
            query_params={p["name"]: p for p in params if p.get("in") == "query"},
            body_required=body_required,
            body_schema=body_schema,
            responses=raw.get("responses", {}),
        )

    # -- schemas -------------------------------------------------------------------------

    def _collect(self, node: Any, seen: set[str]) -> None:
        """Convert every component reachable from ``node`` into ``self._schemas``."""
        stack = [node]
        while stack:
            cur = stack.pop()
            if isinstance(cur, list):
                stack.extend(cur)
            elif isinstance(cur, dict):
                ref = cur.get("$ref")
                if isinstance(ref, str) and ref not in seen:
                    seen.add(ref)
                    if ref.startswith("#/components/"):
                        section, name = ref[len("#/components/") :].split("/", 1)
                        converted = self._schemas.setdefault(section, {})
                        if name not in converted:
                            target = self._pointer(ref)
                            converted[name] = _to_json_schema(target)
                            stack.append(target)
                stack.extend(v for k, v in cur.items() if k not in ("example", "examples"))

    def validator(self, schema: dict[str, Any]) -> jsonschema.Draft4Validator:
        """A draft-4 validator for an OpenAPI schema whose ``#/components`` refs resolve."""
        with self._lock:
            self._collect(schema, set())
            doc = {"components": copy.copy(self._schemas), "x-root": _to_json_schema(schema)}
            resource = referencing.Resource(
                contents=doc, specification=referencing.jsonschema.DRAFT4
            )
            registry = referencing.Registry().with_resource(_DOC_URI, resource)
        return jsonschema.Draft4Validator({"$ref": f"{_DOC_URI}#/x-root"}, registry=registry)

    # -- checks --------------------------------------------------------------------------

    def check(self, method: str, path: str, query: dict[str, Any], body: Any | None) -> list[str]:
        """Violations of GitHub's REST description by one request (empty when it conforms).

        ``path`` is the decoded request path, ``query`` maps names to a string (or a list of
        strings when repeated), ``body`` is the parsed JSON body or None when there was none.
        """
        template, _params, problems = self.match(method, path)
        if template is None:
            return problems
        op = self.operation(method, template)
        where = f"{method.upper()} {template} ({op.operation_id})"
        for name, value in query.items():
            spec = op.query_params.get(name)
            if spec is None:
                problems.append(f"{where}: unknown query parameter {name!r}")
                continue
            problems.extend(f"{where}: {p}" for p in _check_query_value(name, value, spec))
        for name, spec in op.query_params.items():
            if spec.get("required") and name not in query:
                problems.append(f"{where}: missing required query parameter {name!r}")
        if body is None:
            if op.body_required:
                problems.append(f"{where}: missing required JSON request body")
            return problems
        if op.body_schema is None:
            problems.append(f"{where}: sends a request body but the operation takes none")
            return problems
        if op._validator is None:
            op._validator = self.validator(op.body_schema)
        for err in sorted(op._validator.iter_errors(body), key=lambda e: list(e.path)):
            loc = "/".join(str(p) for p in err.absolute_path) or "(root)"
            problems.append(f"{where}: request body at {loc}: {err.message}")
        # Stricter than GitHub (which ignores them): an undeclared top-level field is a typo.
        top = self._param(op.body_schema)
        if isinstance(body, dict) and "properties" in top and "additionalProperties" not in top:
            for name in body:
                if name not in top["properties"]:
                    problems.append(f"{where}: request body has unknown property {name!r}")
        return problems

    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Schema errors of a response body (used to keep the stand-in's own replies honest)."""
        template, _params, problems = self.match(method, path)
        if template is None:
            return problems
        op = self.operation(method, template)
        spec = op.responses.get(str(status))
        if spec is None:
            return [f"{method.upper()} {template}: status {status} is not documented"]
        spec = self._param(spec)
        schema = spec.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        errors = self.validator(schema).iter_errors(body)
        return [
            f"{method.upper()} {template} {status} at "
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in errors
        ]


def _check_query_value(name: str, value: Any, spec: dict[str, Any]) -> list[str]:
    schema = spec.get("schema", {})
    kind = schema.get("type")
    values = value if isinstance(value, list) else [value]
    if len(values) > 1 and kind != "array":
        return [f"query parameter {name!r} given {len(values)} times"]
    problems = []
    for v in values:
        if kind == "integer":
            try:
                n = int(v)
            except ValueError:
                problems.append(f"query parameter {name!r}={v!r} is not an integer")
                continue
            if "minimum" in schema and n < schema["minimum"]:
                problems.append(f"query parameter {name!r}={v!r} is below {schema['minimum']}")
            if "maximum" in schema and n > schema["maximum"]:
                problems.append(f"query parameter {name!r}={v!r} is above {schema['maximum']}")
        elif kind == "boolean" and v not in ("true", "false"):
            problems.append(f"query parameter {name!r}={v!r} is not true/false")
        elif kind == "string" and "enum" in schema and v not in schema["enum"]:
            problems.append(f"query parameter {name!r}={v!r} is not one of {schema['enum']}")
    return problems
