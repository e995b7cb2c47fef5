from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers.pgcontrol import PgControl
from helpers.services import missing_service
from helpers.stack import Stack

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from helpers.browsing import Person


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


@pytest.fixture
def browser(stack):
    """Debian's chromium driven by Playwright through its executable path (LABCI_TEST_BROWSER,
    else /usr/bin/chromium; `bash scripts/browser.sh` installs it). Playwright never downloads
    a browser here. Missing: a skip on a laptop, a failure in CI.

    One per test, started after the test's stack (`stack` is requested first for that):
    Playwright's sync API keeps an event loop running in this thread while it is open, and
    the database fixtures call `asyncio.run`, which must not see one."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    path = os.environ.get("LABCI_TEST_BROWSER", "/usr/bin/chromium")
    if not Path(path).is_file():
        missing_service("browser", f"{path} is missing (bash scripts/browser.sh installs it)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=path, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
        except PlaywrightError as exc:
            missing_service("browser", f"{path} does not start: {exc.message}")
        yield launched
        launched.close()


@pytest.fixture
def pg(database_url):
    """The test database's own PostgreSQL connection (PgControl): locks, pg_stat_activity,
    pg_terminate_backend. PostgreSQL only: these tests are about its backends."""
    if not database_url.startswith("postgresql"):
        missing_service("postgres", "LABCI_TEST_DATABASE_URL is not set")
    control = PgControl(database_url)
    yield control
    control.close()


@pytest.fixture
def open_tab(browser: Browser, stack: Stack) -> Iterator[Callable[[], Person]]:
    """A fresh browser profile (no cookies) per call, each with one tab on the stack."""
    from helpers.browsing import RECORD_VIOLATIONS, Person

    contexts = []

    def open_one() -> Person:
        context = browser.new_context(base_url=stack.url)
        contexts.append(context)
        context.add_init_script(RECORD_VIOLATIONS)
        person = Person(context.new_page(), stack.url)
        person.page.on("console", person.hear)
        person.page.on("pageerror", lambda exc: person.console_errors.append(f"uncaught: {exc}"))
        return person

    yield open_one
    for context in contexts:
        context.close()
