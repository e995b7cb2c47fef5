"""People for tests: local accounts and personal API tokens, made through labci's own code."""

from __future__ import annotations

from typing import Any

from labci_server.auth import accounts
from labci_server.auth.api_tokens import TokenRequest

PASSWORD = "correct horse battery staple"


async def make_user(sessions: Any, login: str, *, admin: bool = False) -> Any:
    return await accounts.create_local_user(sessions, login=login, password=PASSWORD, admin=admin)


async def make_token(sessions: Any, user: Any, scope: str = "admin") -> str:
    made = await accounts.new_token_for(sessions, user, TokenRequest("test", scope, 1))
    return str(made["token"])


async def admin_token(sessions: Any, login: str = "admin") -> str:
    return await make_token(sessions, await make_user(sessions, login, admin=True))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
