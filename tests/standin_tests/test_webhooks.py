from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from forge_standin import encode, headers, load_examples, pull_request_payload, push_payload, sign
from forge_standin.webhooks import EXAMPLES_FILE, HOOKSHOT_AGENT, ZERO_SHA

SECRET = "labci-webhook-secret"
BEFORE = "a" * 40
AFTER = "b" * 40
CLONE = "http://127.0.0.1:9/acme/widgets.git"


def verify(body: bytes, header: str, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_sign_matches_githubs_published_vector() -> None:
    assert sign(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_examples_are_the_npm_packages_and_copies() -> None:
    raw = {d["name"]: d["examples"] for d in json.loads(EXAMPLES_FILE.read_bytes())}
    assert load_examples("push") == raw["push"]
    first = load_examples("push")
    first[0]["ref"] = "changed"
    assert load_examples("push")[0]["ref"] == raw["push"][0]["ref"]
    with pytest.raises(KeyError, match="no examples for event 'no_such_event'"):
        load_examples("no_such_event")


def test_push_payload_overwrites_what_labci_reads_and_keeps_real_shape() -> None:
    p = push_payload("acme", "widgets", CLONE, "refs/heads/main", BEFORE, AFTER, private=True)
    assert (p["ref"], p["before"], p["after"]) == ("refs/heads/main", BEFORE, AFTER)
    assert (p["created"], p["deleted"]) == (False, False)
    assert p["head_commit"]["id"] == AFTER
    assert [c["id"] for c in p["commits"]] == [AFTER]
    repo = p["repository"]
    assert (repo["full_name"], repo["name"], repo["owner"]["login"]) == (
        "acme/widgets",
        "widgets",
        "acme",
    )
    assert (repo["clone_url"], repo["private"]) == (CLONE, True)
    assert repo["html_url"] == "https://github.com/acme/widgets"
    assert isinstance(repo["created_at"], int)  # odd but real: pushes carry epoch integers
    assert p["sender"]["login"] == "Codertocat"  # untouched fields come from the example


def test_push_of_a_deleted_branch_has_no_head_commit() -> None:
    p = push_payload("acme", "widgets", CLONE, "refs/heads/gone", BEFORE, ZERO_SHA)
    assert (p["deleted"], p["head_commit"], p["commits"]) == (True, None, [])


def test_pull_request_payload_from_a_fork() -> None:
    p = pull_request_payload(
        "synchronize",
        "acme",
        "widgets",
        CLONE,
        7,
        "fix-typo",
        AFTER,
        "main",
        BEFORE,
        head_owner="mallory",
        head_clone_url="http://127.0.0.1:9/mallory/widgets.git",
        author="mallory",
        author_association="FIRST_TIME_CONTRIBUTOR",
        before="c" * 40,
    )
    pr = p["pull_request"]
    assert (p["action"], p["number"], pr["number"]) == ("synchronize", 7, 7)
    assert (p["before"], p["after"]) == ("c" * 40, AFTER)
    assert (pr["head"]["ref"], pr["head"]["sha"]) == ("fix-typo", AFTER)
    assert (pr["base"]["ref"], pr["base"]["sha"]) == ("main", BEFORE)
    assert pr["head"]["repo"]["full_name"] == "mallory/widgets"
    assert pr["head"]["repo"]["clone_url"] == "http://127.0.0.1:9/mallory/widgets.git"
    assert pr["head"]["repo"]["fork"] is True
    assert pr["base"]["repo"]["full_name"] == "acme/widgets"
    assert p["repository"]["clone_url"] == CLONE
    assert (pr["author_association"], pr["user"]["login"]) == ("FIRST_TIME_CONTRIBUTOR", "mallory")
    assert pr["url"].endswith("/repos/acme/widgets/pulls/7")


@pytest.mark.parametrize(
    ("action", "has_example"),
    [("opened", True), ("reopened", True), ("edited", False)],
    ids=["opened", "reopened", "edited-no-example"],
)
def test_pull_request_actions(action: str, has_example: bool) -> None:
    actions = {e["action"] for e in load_examples("pull_request")}
    assert (action in actions) is has_example
    p = pull_request_payload(action, "acme", "widgets", CLONE, 3, "f", AFTER, "main", BEFORE)
    assert p["action"] == action
    assert p["pull_request"]["head"]["repo"]["fork"] is False
    assert "before" not in p


def test_headers_sign_the_exact_body() -> None:
    payload = push_payload("acme", "widgets", CLONE, "refs/heads/main", BEFORE, AFTER)
    body = encode(payload)
    h = headers("push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body, SECRET)
    assert h["X-GitHub-Event"] == "push"
    assert h["X-GitHub-Delivery"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert h["Content-Type"] == "application/json"
    assert h["User-Agent"] == HOOKSHOT_AGENT == "GitHub-Hookshot/abc123"
    assert verify(body, h["X-Hub-Signature-256"], SECRET)
    assert not verify(body + b" ", h["X-Hub-Signature-256"], SECRET)
    assert not verify(body, h["X-Hub-Signature-256"], "other-secret")
    assert json.loads(body) == payload
    unsigned = headers("ping", None, body, None)
    assert "X-Hub-Signature-256" not in unsigned
    assert len(unsigned["X-GitHub-Delivery"]) == 36
