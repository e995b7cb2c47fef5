from __future__ import annotations

import pytest

from helpers.stack import Stack


@pytest.fixture
def stack(tmp_path, database_url, redis_url, github, request):
    s = Stack(
        root=tmp_path / "stack",
        database_url=database_url,
        redis_url=redis_url,
        github_url=github.url,
    )
    s.root.mkdir()
    yield s
    s.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(s.dump_logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
