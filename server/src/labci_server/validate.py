"""`labci validate`: check workflow files before pushing them, like a compiler would.

Errors are printed as `file:line:col: error: message`, then the offending line with a
caret under the column. Valid files get a summary of what they would run: each job's
matrix size, labels, needs and resources. The exit status is 1 when any file has an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from labci_spec import (
    MAX_WORKFLOW_BYTES,
    ExpressionError,
    SpecError,
    SpecErrors,
    Workflow,
    expand_job,
    load_workflow,
)

from .forge.base import MAX_WORKFLOW_FILES, WORKFLOW_DIR

MAX_SHOWN_LINE_CHARS = 200


@dataclass
class Report:
    files: int = 0
    jobs: int = 0
    errors: int = 0
    failed_files: list[str] = field(default_factory=list)


def workflow_paths(args: list[str], cwd: Path) -> list[Path]:
    """The files to check: those named, `.labci/*.yml` of each directory named, or of cwd."""
    targets = [Path(a) for a in args] or [cwd]
    paths: list[Path] = []
    for target in targets:
        if target.is_dir():
            folder = target / WORKFLOW_DIR if (target / WORKFLOW_DIR).is_dir() else target
            paths += sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
        else:
            paths.append(target)
    return paths


def validate_files(paths: Iterable[Path], out: TextIO) -> Report:
    report = Report()
    paths = list(paths)
    if len(paths) > MAX_WORKFLOW_FILES:
        print(
            f"warning: {len(paths)} workflow files; labci reads only the first "
            f"{MAX_WORKFLOW_FILES} of a commit, by name",
            file=out,
        )
    for path in paths:
        report.files += 1
        data = b""
        try:
            data = _read(path)
            workflow = load_workflow(data, str(path))
            summary = _summary(path, workflow)
        except ExpressionError as exc:
            print(f"{path}: error: an expression cannot be evaluated: {exc.message}", file=out)
            report.errors += 1
            report.failed_files.append(str(path))
            continue
        except SpecErrors as exc:
            _print_errors(exc.errors, data, out)
            report.errors += len(exc.errors)
            report.failed_files.append(str(path))
            continue
        except OSError as exc:
            print(f"{path}: error: {exc.strerror or exc}", file=out)
            report.errors += 1
            report.failed_files.append(str(path))
            continue
        print("\n".join(summary), file=out)
        report.jobs += len(workflow.jobs)
    _print_totals(report, out)
    return report


def _read(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_WORKFLOW_BYTES + 1)  # the loader says "too large" past the cap


def _print_errors(errors: list[SpecError], data: bytes, out: TextIO) -> None:
    lines = data.decode("utf-8-sig", errors="replace").splitlines()
    for error in errors:
        print(f"{error.path}:{error.line}:{error.column}: error: {error.message}", file=out)
        # File-level problems (size, encoding) have no line worth showing.
        if _has_text(lines, error.line) and not error.message.startswith("file "):
            source = lines[error.line - 1][:MAX_SHOWN_LINE_CHARS]
            # Keep tabs in the caret's indent so it lines up under the column.
            indent = "".join(c if c == "\t" else " " for c in source[: error.column - 1])
            print(f"    {source}", file=out)
            print(f"    {indent}^", file=out)


def _has_text(lines: list[str], line: int) -> bool:
    return 0 < line <= len(lines) and bool(lines[line - 1].strip())


def _summary(path: Path, workflow: Workflow) -> list[str]:
    """What the workflow would run; raises SpecErrors when a job cannot be expanded."""
    events = ", ".join(
        e
        for e in ("push", "pull_request", "workflow_dispatch", "schedule")
        if getattr(workflow.on, e)
    )
    lines = [f"{path}: ok — workflow '{workflow.name}' on {events}"]
    for job_id, job in workflow.jobs.items():
        instances = expand_job(workflow, job_id)
        parts = [f"{len(instances)} instance{'s' if len(instances) != 1 else ''}"]
        if job.strategy is not None:
            axes = ", ".join(f"{k}: {len(v)}" for k, v in job.strategy.matrix.axes.items())
            parts.append(f"matrix {axes}" if axes else "matrix from include")
        if job.metrics and job.metrics.repeats:
            most = job.metrics.max_repeats
            parts.append(f"repeats: {job.metrics.repeats}{f' (up to {most})' if most else ''}")
        labels = {tuple(i.job.runs_on) for i in instances}
        shown = instances[0].job.runs_on if len(labels) == 1 else job.runs_on  # rendered if one
        parts.append(f"on [{', '.join(shown)}]")
        if job.resources.gpus:
            parts.append(f"{job.resources.gpus} GPU{'s' if job.resources.gpus > 1 else ''}")
        if job.needs:
            parts.append(f"needs {', '.join(job.needs)}")
        if job.container:
            parts.append(f"in {job.container.image}")
        lines.append(f"  {job_id}: {', '.join(parts)}")
    return lines


def _print_totals(report: Report, out: TextIO) -> None:
    if not report.failed_files:
        plural = "s" if report.files != 1 else ""
        jobs = f"{report.jobs} job{'s' if report.jobs != 1 else ''}"
        print(f"{report.files} workflow file{plural} ok, {jobs}", file=out)
        return
    print(
        f"{len(report.failed_files)} of {report.files} workflow files have errors "
        f"({report.errors} in all)",
        file=out,
    )
