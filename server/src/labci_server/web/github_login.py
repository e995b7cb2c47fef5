"""`/login/github`: "Sign in with GitHub" (the flow itself is `auth/github_oauth.py`).

Both routes answer 404 unless LABCI_GITHUB_OAUTH_CLIENT_ID is set. A flow that fails
(another browser's `state`, a refusal, GitHub's error) ends on the sign-in page with what
went wrong and a 4xx (503 when GitHub cannot be reached), with nobody signed in.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..api.deps import Ctx
from ..auth.github_oauth import NEXT_KEY, finish_sign_in, page_status, start_sign_in
from ..auth.policies import PUBLIC, policy
from ..errors import LabciError, NotFound
from .account import safe_next, sign_in_page, start_session

router = APIRouter()

MAX_NEXT_CHARS = 2000


@router.get("/login/github", dependencies=policy(PUBLIC))
async def github_sign_in(
    request: Request,
    sc: Ctx,
    next: Annotated[str | None, Query(max_length=MAX_NEXT_CHARS)] = None,
) -> Response:
    response = await start_sign_in(sc.settings, request)
    request.session[NEXT_KEY] = safe_next(next)
    return response


@router.get("/login/github/callback", dependencies=policy(PUBLIC))
async def github_callback(request: Request, sc: Ctx) -> Response:
    target = safe_next(request.session.get(NEXT_KEY))
    try:
        user = await finish_sign_in(sc.settings, sc.sessions, request)
    except NotFound:
        raise  # not set up here: the JSON 404 of any unknown route
    except LabciError as exc:
        request.session.pop(NEXT_KEY, None)
        return sign_in_page(request, sc, target, error=exc, status=page_status(exc))
    start_session(request, user.id or 0)
    return RedirectResponse(target, status_code=303)
