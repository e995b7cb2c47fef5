"""`check_run` webhooks of labci as a GitHub App: GitHub's real example deliveries
(@octokit/webhooks-examples), the stand-in's own, and malformed ones."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from forge_standin import check_run_payload, load_examples
from forge_standin.webhooks import events
from labci_server.errors import BadRequest
from labci_server.webhooks.github_checks import (
    CheckRunRequest,
    installation_id_of,
    parse_check_run,
)

EXAMPLE_APP_ID = 2  # the App of GitHub's `rerequested` examples ("Super Duper")
SHA = "d6fde92930d4715a2b49857d24b940956b26d2d3"
CHECK_RUN_EXAMPLES = load_examples("check_run")


def example_id(payload: dict[str, Any]) -> str:
    return f"{payload['action']}-app{payload['check_run']['app']['id']}"


@pytest.mark.parametrize(
    "payload",
    [e for e in CHECK_RUN_EXAMPLES if e["action"] == "rerequested"],
    ids=example_id,
)
def test_a_rerequested_example_for_our_app_is_a_rerun(payload: dict[str, Any]) -> None:
    assert parse_check_run(payload, app_id=EXAMPLE_APP_ID) == CheckRunRequest(
        repo_full_name="github/hello-world",
        installation_id=1,
        head_sha=SHA,
        external_id="",
        name="randscape",
        check_run_id=4,
    )
    assert parse_check_run(payload, app_id=str(EXAMPLE_APP_ID)) is not None  # as settings give it


@pytest.mark.parametrize("payload", CHECK_RUN_EXAMPLES, ids=example_id)
def test_another_apps_check_run_is_not_ours(payload: dict[str, Any]) -> None:
    assert parse_check_run(payload, app_id=31337) is None


@pytest.mark.parametrize(
    "payload",
    [e for e in CHECK_RUN_EXAMPLES if e["action"] != "rerequested"],
    ids=example_id,
)
def test_other_actions_are_not_reruns(payload: dict[str, Any]) -> None:
    assert payload["action"] in ("created", "completed", "requested_action")
    assert parse_check_run(payload, app_id=payload["check_run"]["app"]["id"]) is None


def test_the_stand_ins_delivery_parses_to_what_it_was_built_from() -> None:
    payload = check_run_payload(
        "octo",
        "exp",
        "https://github.com/octo/exp.git",
        check_run_id=3_000_000_001,
        head_sha="a" * 40,
        name="labci/train/cifar10",
        external_id="job-group:123:labci/train/cifar10",
        app_id=31337,
        installation_id=77,
    )
    assert parse_check_run(payload, app_id=31337) == CheckRunRequest(
        repo_full_name="octo/exp",
        installation_id=77,
        head_sha="a" * 40,
        external_id="job-group:123:labci/train/cifar10",
        name="labci/train/cifar10",
        check_run_id=3_000_000_001,
    )


def _app_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every example of every event, named event.action#n."""
    out = []
    for event in events():
        for n, payload in enumerate(load_examples(event)):
            out.append((f"{event}.{payload.get('action', '-')}#{n}", payload))
    return out


APP_EXAMPLES = _app_examples()


def test_installation_ids_of_every_example() -> None:
    with_installation = [(name, p) for name, p in APP_EXAMPLES if "installation" in p]
    assert len(with_installation) > 100  # check_run, check_suite, installation, push, ...
    for name, payload in APP_EXAMPLES:
        expected = payload["installation"]["id"] if "installation" in payload else None
        assert (name, installation_id_of(payload)) == (name, expected)
    names = {name.split(".")[0] for name, _ in with_installation}
    assert {"check_run", "check_suite", "installation", "installation_repositories"} <= names


def _broken(change: str) -> dict[str, Any]:
    payload = copy.deepcopy(next(e for e in CHECK_RUN_EXAMPLES if e["action"] == "rerequested"))
    run = payload["check_run"]
    if change == "no-action":
        del payload["action"]
    elif change == "no-check-run":
        del payload["check_run"]
    elif change == "no-app":
        del run["app"]
    elif change == "app-id-text":
        run["app"]["id"] = "2"
    elif change == "short-sha":
        run["head_sha"] = SHA[:7]
    elif change == "no-name":
        run["name"] = ""
    elif change == "external-id-number":
        run["external_id"] = 5
    elif change == "no-installation":
        del payload["installation"]
    elif change == "installation-id-text":
        payload["installation"]["id"] = "1"
    elif change == "no-full-name":
        del payload["repository"]["full_name"]
    elif change == "check-run-id-bool":
        run["id"] = True
    return payload


MALFORMED = [
    ("no-action", "check_run payload: `action` is missing or not text"),
    ("no-check-run", "`check_run` is missing or not an object"),
    ("no-app", "`check_run.app` is missing or not an object"),
    ("app-id-text", "`check_run.app.id` is missing or not a positive integer: '2'"),
    (
        "short-sha",
        "check_run.head_sha: expected a 40-hex commit sha, got 'd6fde92'",
    ),
    ("no-name", "check_run.name is missing or not text"),
    ("external-id-number", "check_run.external_id is not text"),
    (
        "no-installation",
        "check_run payload has no `installation`: not delivered to a GitHub App",
    ),
    ("installation-id-text", "`installation.id` is missing or not a positive integer: '1'"),
    ("no-full-name", "repository.full_name is missing or not owner/name"),
    ("check-run-id-bool", "`check_run.id` is missing or not a positive integer: True"),
]


@pytest.mark.parametrize(("change", "reason"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_a_malformed_rerequest_is_a_bad_request(change: str, reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_check_run(_broken(change), app_id=EXAMPLE_APP_ID)
    assert str(caught.value) == reason


def test_a_payload_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="^check_run payload is not a JSON object$"):
        parse_check_run([], app_id=EXAMPLE_APP_ID)  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="^`installation` is not an object$"):
        installation_id_of({"installation": 1})
