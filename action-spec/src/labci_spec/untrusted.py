"""What a workflow may not ask for when the code comes from a fork.

A fork's pull request brings its own `.labci/*.yml`: whatever it asks for, it asks as a
stranger. Its jobs run only in containers (docker runners), and the container may not be
loosened: no `network: host` and no extra `docker run` options, even the allow-listed
ones; when the server names the runner labels forks may use, only those. Each problem is
reported at the file, line and column of the value, like every other workflow error.
"""

from __future__ import annotations

from collections.abc import Collection

from yaml.nodes import MappingNode

from labci_spec.errors import SpecError
from labci_spec.loader import _decode
from labci_spec.yamlnodes import Data, Location, compose_nodes, to_data


def untrusted_problems(
    text: str | bytes, path: str, *, allowed_labels: Collection[str] = ()
) -> list[SpecError]:
    """The problems of a (valid) workflow file run for a fork; empty when it may run."""
    decoded = _decode(text, path)
    root = compose_nodes(decoded)
    if not isinstance(root, MappingNode):
        return []
    data = to_data(root, decoded)
    jobs = data.value.get("jobs") if isinstance(data.value, dict) else None
    problems: list[SpecError] = []
    for job_id, job in (jobs or {}).items():
        if not isinstance(job, dict):
            continue
        where: Location = ("jobs", job_id)
        container = job.get("container")
        if isinstance(container, dict):
            if str(container.get("network", "none")) == "host":
                message = "a fork's job may not use `network: host`"
                problems.append(_at(data, path, (*where, "container", "network"), message))
            if str(container.get("options") or "").strip():
                problems.append(
                    _at(data, path, (*where, "container", "options"), "a fork's job may not"
                        " set `docker run` options")
                )  # fmt: skip
        if allowed_labels:
            labels = job.get("runs-on")
            items = [labels] if isinstance(labels, str) else labels or []
            for index, label in enumerate(items):
                if isinstance(label, str) and label not in allowed_labels:
                    loc = (
                        (*where, "runs-on")
                        if isinstance(labels, str)
                        else (*where, "runs-on", index)
                    )
                    allowed = ", ".join(sorted(allowed_labels))
                    problems.append(
                        _at(data, path, loc, f"a fork's job may not ask for runner label"
                            f" {label!r} (forks may use: {allowed})")
                    )  # fmt: skip
    return sorted(problems, key=lambda e: (e.line, e.column))


def _at(data: Data, path: str, loc: Location, message: str) -> SpecError:
    found, place = data.find(loc)
    mark = place.value.start_mark
    where = ".".join(str(part) for part in found)
    return SpecError(path, mark.line + 1, mark.column + 1, f"{where}: {message}")
