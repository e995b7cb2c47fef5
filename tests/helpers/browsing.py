"""A person using labci's pages in a real browser tab, and what the browser reported there:
console errors and Content-Security-Policy violations (the `open_tab` fixture of
tests/e2e/conftest.py opens one per fresh browser profile)."""

from __future__ import annotations

from dataclasses import dataclass, field

from playwright.sync_api import ConsoleMessage, Page

VIOLATIONS_KEY = "labci-test-csp-violations"
# Kept in the tab's sessionStorage, so a test reads every page's violations, in order, from
# the page it is on (all pages share one origin), with no race against an event handler.
RECORD_VIOLATIONS = f"""
document.addEventListener("securitypolicyviolation", (event) => {{
  const seen = JSON.parse(sessionStorage.getItem("{VIOLATIONS_KEY}") || "[]");
  seen.push(`${{event.effectiveDirective}} ${{event.blockedURI}} on ${{event.documentURI}}`);
  sessionStorage.setItem("{VIOLATIONS_KEY}", JSON.stringify(seen));
}});
"""


@dataclass
class Person:
    """One browser tab of someone using labci, and what the browser reported on it."""

    page: Page
    url: str
    console_errors: list[str] = field(default_factory=list)

    def hear(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.location.get('url')}: {message.text}")

    def page_errors(self) -> list[str]:
        """Console errors but the favicon's: labci has no /favicon.ico, and Chromium logs its
        404 on the first page of a profile (a known gap, not what these tests are about)."""
        return [e for e in self.console_errors if not e.startswith(f"{self.url}/favicon.ico:")]

    def violations(self) -> list[str]:
        return list(
            self.page.evaluate(f"JSON.parse(sessionStorage.getItem('{VIOLATIONS_KEY}') || '[]')")
        )

    def refused(self, path: str, status: str) -> str:
        """The console error Chromium logs for every 4xx answer it loads."""
        return f"{self.url}{path}: Failed to load resource: the server responded with a status of {status}"

    def sign_in(self, login: str, password: str, *, path: str | None = "/login") -> None:
        """Fill the sign-in form and send it; opens `path` first unless it is None."""
        if path is not None:
            self.page.goto(path)
        self.page.get_by_label("Login").fill(login)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
