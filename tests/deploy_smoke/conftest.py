from __future__ import annotations

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps the call's report on the test item, for fixtures that print what a failure needs
    (the compose project's logs) only when the test failed."""
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
