"""`on:`: each event's keys, valid and with their typical mistakes located, and the inputs
of a manual run (`resolve_inputs`)."""

from __future__ import annotations

from typing import Any

import pytest
from spec_corpus import VALID, errors_of, load, located, on_with

from labci_spec import (
    DispatchInput,
    InputsError,
    PullRequestTrigger,
    PushTrigger,
    WorkflowDispatch,
    resolve_inputs,
)
from labci_spec.triggers import Schedule

VALID_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("push-bare", on_with("push"), {"push": PushTrigger()}),
    (
        "push-filters",
        on_with("{push: {branches: [main, 'release/**'], paths: ['src/**', '!src/docs/**']}}"),
        {
            "push": PushTrigger.model_validate(
                {"branches": ["main", "release/**"], "paths": ["src/**", "!src/docs/**"]}
            )
        },
    ),
    (
        "push-ignore-filters",
        on_with("{push: {branches-ignore: 'wip/**', paths-ignore: ['*.md']}}"),
        {
            "push": PushTrigger.model_validate(
                {"branches-ignore": ["wip/**"], "paths-ignore": ["*.md"]}
            )
        },
    ),
    (
        "pull-request-default-types",
        on_with("pull_request"),
        {
            "pull_request": PullRequestTrigger.model_validate(
                {"types": ["opened", "synchronize", "reopened"]}
            )
        },
    ),
    (
        "pull-request-types",
        on_with("{pull_request: {types: [opened, ready_for_review], branches: [main]}}"),
        {
            "pull_request": PullRequestTrigger.model_validate(
                {"types": ["opened", "ready_for_review"], "branches": ["main"]}
            )
        },
    ),
    (
        "dispatch-inputs",
        VALID["on-dispatch-inputs"],
        {
            "workflow_dispatch": WorkflowDispatch(
                inputs={
                    "lr": DispatchInput.model_validate({"type": "number", "default": "0.01"}),
                    "fast": DispatchInput.model_validate({"type": "boolean", "default": True}),
                    "opt": DispatchInput.model_validate(
                        {"type": "choice", "options": ["adam", "sgd"], "default": "adam"}
                    ),
                    "note": DispatchInput.model_validate({"description": "why", "required": True}),
                }
            )
        },
    ),
    (
        "schedule",
        VALID["on-schedule"],
        {"schedule": [Schedule(cron="0 3 * * *"), Schedule(cron="*/15 9-17 * * MON-FRI")]},
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in VALID_CASES], ids=[case[0] for case in VALID_CASES]
)
def test_valid_triggers(text: str, expected: dict[str, Any]) -> None:
    on = load(text).on
    events = ("push", "pull_request", "workflow_dispatch", "schedule")
    assert {
        event: getattr(on, event) for event in events if getattr(on, event) is not None
    } == expected


EVENTS = "push, pull_request, workflow_dispatch, schedule"
ERROR_CASES = [
    (
        "unknown-event-in-list",
        on_with("[push, pull-request]"),
        ["1:12: on[1]: unknown event 'pull-request' (did you mean 'pull_request'?)"],
    ),
    (
        "unknown-event-block-list",
        on_with("\n  - push\n  - pull-request"),
        ["3:5: on[1]: unknown event 'pull-request' (did you mean 'pull_request'?)"],
    ),
    (
        "unknown-event-string",
        on_with("pull_requests"),
        ["1:5: on: unknown event 'pull_requests' (did you mean 'pull_request'?)"],
    ),
    (
        "unknown-event-key",
        on_with("{push: {}, release: {}}"),
        [f"1:16: on: unknown event 'release' (expected one of: {EVENTS})"],
    ),
    ("event-listed-twice", on_with("[push, push]"), ["1:5: on: event 'push' is listed twice"]),
    (
        "mapping-inside-a-list",
        on_with("[push, {pull_request: {branches: [main]}}]"),
        [
            "1:5: on: a list of events holds only event names; to give an event filters, write"
            " `on:` as a mapping"
        ],
    ),
    ("no-events", on_with("[]"), [f"1:5: on: expected at least one of {EVENTS}"]),
    ("on-null", on_with(""), ["1:4: on: expected a mapping, got null"]),
    (
        "unknown-filter-hint",
        on_with("{push: {branch: [main]}}"),
        ["1:13: on.push: unknown key 'branch' (did you mean 'branches'?)"],
    ),
    (
        "tags-not-supported",
        on_with("{push: {tags: ['v*']}}"),
        [
            "1:13: on.push: unknown key 'tags' (expected one of: branches, branches-ignore, paths, paths-ignore)"
        ],
    ),
    (
        "branches-mapping",
        on_with("{push: {branches: {main: 1}}}"),
        ["1:23: on.push.branches: expected a string, got a mapping"],
    ),
    (
        "glob-unclosed-bracket",
        on_with("{push: {branches: ['[a']}}"),
        [
            '1:24: on.push.branches[0]: "[" at character 1 is never closed; add "]" or write "\\[" to match a literal "["'
        ],
    ),
    (
        "glob-backwards-range",
        on_with("{push: {paths: ['a/[z-a]']}}"),
        ['1:21: on.push.paths[0]: "[z-a]" at character 3: range "z-a" runs backwards; write "a-z"'],
    ),
    (
        "pr-type-unsupported",
        on_with("{pull_request: {types: [closed]}}"),
        [
            "1:29: on.pull_request.types[0]: expected 'opened', 'synchronize', 'reopened' or"
            " 'ready_for_review', got \"closed\""
        ],
    ),
    (
        "dispatch-inputs-list",
        on_with("{workflow_dispatch: {inputs: [a]}}"),
        ["1:34: on.workflow_dispatch.inputs: expected a mapping, got a list"],
    ),
    (
        "dispatch-input-name",
        on_with("{workflow_dispatch: {inputs: {'1a': {}}}}"),
        [
            "1:35: on.workflow_dispatch.inputs: invalid input name '1a' (use letters, digits,"
            " '_' and '-', starting with a letter or '_')"
        ],
    ),
    (
        "dispatch-type",
        on_with("{workflow_dispatch: {inputs: {a: {type: int}}}}"),
        [
            "1:45: on.workflow_dispatch.inputs.a.type: expected 'string', 'number', 'boolean'"
            " or 'choice', got \"int\""
        ],
    ),
    (
        "dispatch-choice-without-options",
        on_with("{workflow_dispatch: {inputs: {a: {type: choice}}}}"),
        ["1:38: on.workflow_dispatch.inputs.a: a choice input needs a non-empty `options` list"],
    ),
    (
        "dispatch-options-without-choice",
        on_with("{workflow_dispatch: {inputs: {a: {options: [x]}}}}"),
        ["1:38: on.workflow_dispatch.inputs.a: `options` is only for `type: choice`, not string"],
    ),
    (
        "dispatch-default-not-a-number",
        on_with("{workflow_dispatch: {inputs: {a: {type: number, default: abc}}}}"),
        ["1:38: on.workflow_dispatch.inputs.a: default 'abc' is not a number"],
    ),
    (
        "dispatch-default-not-an-option",
        on_with("{workflow_dispatch: {inputs: {a: {type: choice, options: [x], default: y}}}}"),
        ["1:38: on.workflow_dispatch.inputs.a: default 'y' is not one of: x"],
    ),
    (
        "dispatch-default-not-a-boolean",
        on_with("{workflow_dispatch: {inputs: {a: {type: boolean, default: yes}}}}"),
        ["1:38: on.workflow_dispatch.inputs.a: default 'yes' is not a boolean (true or false)"],
    ),
    (
        "dispatch-default-list",
        on_with("{workflow_dispatch: {inputs: {a: {default: [1]}}}}"),
        ["1:48: on.workflow_dispatch.inputs.a.default: expected a string, number or boolean"],
    ),
    (
        "dispatch-required-yes",
        on_with("{workflow_dispatch: {inputs: {a: {required: yes}}}}"),
        ['1:49: on.workflow_dispatch.inputs.a.required: expected true or false, got "yes"'],
    ),
    (
        "schedule-not-a-list",
        on_with("{schedule: '0 0 * * *'}"),
        ['1:16: on.schedule: expected a list, got "0 0 * * *"'],
    ),
    ("schedule-empty", on_with("{schedule: []}"), ["1:16: on.schedule: must not be empty"]),
    (
        "schedule-in-a-list-names-no-time",
        on_with("[push, schedule]"),
        ["1:5: on: `schedule` needs a list of times, e.g. `schedule: [{cron: '0 3 * * *'}]`"],
    ),
    (
        "schedule-null",
        on_with("{push: , schedule: null}"),
        [
            "1:24: on.schedule: `schedule` needs a list of times, e.g."
            " `schedule: [{cron: '0 3 * * *'}]`"
        ],
    ),
    (
        "cron-out-of-range",
        on_with("{schedule: [{cron: '61 * * * *'}]}"),
        ['1:24: on.schedule[0].cron: cron "61 * * * *": minute 61 is out of range 0-59'],
    ),
    (
        "cron-never-fires",
        on_with("{schedule: [{cron: '0 0 31 2 *'}]}"),
        [
            '1:24: on.schedule[0].cron: cron "0 0 31 2 *": never fires; no month in its month'
            " field has a day in its day-of-month field"
        ],
    ),
    (
        "cron-typo",
        on_with("{schedule: [{corn: '0 0 * * *'}]}"),
        ["1:18: on.schedule[0]: unknown key 'corn' (did you mean 'cron'?)"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES]
)
def test_trigger_errors(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)


SPEC = WorkflowDispatch.model_validate(
    {
        "inputs": {
            "lr": {"type": "number", "default": "0.01"},
            "fast": {"type": "boolean", "required": True},
            "opt": {"type": "choice", "options": ["adam", "sgd"], "default": "sgd"},
            "epochs": {"type": "number"},
            "note": {},
            "quiet": {"type": "boolean"},
        }
    }
)
DEFAULTS = {"lr": 0.01, "opt": "sgd", "epochs": "", "note": "", "quiet": False}

RESOLVE_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("defaults-filled-in", {"fast": True}, {**DEFAULTS, "fast": True}),
    (
        "text-from-a-command-line",
        {"fast": "FALSE", "lr": "1e-3", "epochs": "10", "opt": "adam", "note": 5},
        {**DEFAULTS, "fast": False, "lr": 0.001, "epochs": 10, "opt": "adam", "note": "5"},
    ),
    (
        "typed-values",
        {"fast": False, "lr": 2, "quiet": True},
        {**DEFAULTS, "fast": False, "lr": 2, "quiet": True},
    ),
    (
        "hostile-text-is-kept",
        {"fast": True, "note": 'a"; touch pwned #$(id)\n`id`'},
        {**DEFAULTS, "fast": True, "note": 'a"; touch pwned #$(id)\n`id`'},
    ),
]


@pytest.mark.parametrize(
    ("given", "expected"),
    [case[1:] for case in RESOLVE_CASES],
    ids=[case[0] for case in RESOLVE_CASES],
)
def test_resolve_inputs(given: dict[str, Any], expected: dict[str, Any]) -> None:
    assert resolve_inputs(SPEC, given) == expected


RESOLVE_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("required-missing", {}, "input 'fast' is required"),
    (
        "every-problem-listed",
        {"fast": "yes", "lr": "abc", "opt": "rmsprop", "bogus": 1, "other": 2},
        "unknown input 'bogus'; unknown input 'other'; input 'lr': 'abc' is not a number;"
        " input 'fast': 'yes' is not a boolean (true or false); input 'opt': 'rmsprop' is not"
        " one of: adam, sgd",
    ),
    ("not-finite", {"fast": True, "lr": "nan"}, "input 'lr': 'nan' is not a finite number"),
    ("bool-is-no-number", {"fast": True, "lr": True}, "input 'lr': True is not a number"),
    (
        "too-long",
        {"fast": True, "note": "x" * 4097},
        "input 'note': value is longer than 4096 characters",
    ),
]


@pytest.mark.parametrize(
    ("given", "message"),
    [case[1:] for case in RESOLVE_ERRORS],
    ids=[case[0] for case in RESOLVE_ERRORS],
)
def test_resolve_inputs_errors(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InputsError) as caught:
        resolve_inputs(SPEC, given)
    assert str(caught.value) == message


def test_a_workflow_without_inputs_takes_none() -> None:
    with pytest.raises(InputsError) as caught:
        resolve_inputs(WorkflowDispatch(), {"x": 1})
    assert str(caught.value) == "unknown input 'x'"
    assert resolve_inputs(WorkflowDispatch(), {}) == {}
