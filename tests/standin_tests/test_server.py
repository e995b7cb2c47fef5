from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from forge_standin import OpenAPIChecker, StandinServer

from ._support import TOKEN, Repo

HEADERS = {"Authorization": f"token {TOKEN}", "User-Agent": "labci-test/1.0"}


def test_serves_over_loopback_and_stops(repo: Repo, checker: OpenAPIChecker) -> None:
    with StandinServer(repo.root, checker) as server:
        assert server.url.startswith("http://127.0.0.1:")
        before = time.time()
        with httpx.Client(base_url=server.url, headers=HEADERS) as c:
            r = c.get("/repos/acme/widgets/git/trees/main", params={"recursive": "1"})
        assert r.status_code == 200
        assert (
            r.json()["url"]
            == f"{server.url}/repos/acme/widgets/git/trees/{repo.rev('main^{tree}')}"
        )
        (rec,) = server.standin.requests
        assert before <= rec.received_at <= time.time()
        assert rec.headers["user-agent"] == "labci-test/1.0"
        assert rec.status == 200
        port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_crash_after_commit_drops_the_connection(repo: Repo, checker: OpenAPIChecker) -> None:
    with (
        StandinServer(repo.root, checker) as server,
        httpx.Client(base_url=server.url, headers=HEADERS) as c,
    ):
        server.standin.crash_after_commit_next(1)
        url = f"/repos/acme/widgets/statuses/{repo.head}"
        with pytest.raises(httpx.RemoteProtocolError):
            c.post(url, json={"state": "success", "context": "labci/train"})
        server.standin.fail_next(1, "reset")
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/repos/acme/widgets/contents/README.md")
        listed = c.get(f"/repos/acme/widgets/commits/{repo.head}/statuses")
    assert [(s["context"], s["state"]) for s in listed.json()] == [("labci/train", "success")]
    assert [(r.status, r.fault) for r in server.standin.requests] == [
        (None, "crash_after_commit"),
        (None, "fail_next"),
        (200, None),
    ]


def test_overlapping_mutations_are_counted_per_token(repo: Repo, checker: OpenAPIChecker) -> None:
    with StandinServer(repo.root, checker) as server:
        server.standin.latency = 0.3
        url = f"{server.url}/repos/acme/widgets/statuses/{repo.head}"
        barrier = threading.Barrier(2)
        codes: list[int] = []

        def post(context: str) -> None:
            with httpx.Client(headers=HEADERS) as c:
                barrier.wait()
                codes.append(c.post(url, json={"state": "success", "context": context}).status_code)

        threads = [threading.Thread(target=post, args=(f"ctx{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert codes == [201, 201]
    assert sorted(r.in_flight for r in server.standin.mutations()) == [1, 2]
