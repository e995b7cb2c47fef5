"""A pull request's labci comment, as GitHub would show it (issue 13, item 5). The local
`git` forge has no pull request pages of its own: labci keeps the comment it would have
posted (verdict table, reproducibility record) and shows it here. A GitHub pull request's
comment lives on GitHub: the page sends the browser there."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.deps import Ctx, RowId
from ..auth.policies import READ_RUN, Access
from ..db.queries.outbox import pull_request_comment
from ..db.queries.repositories import get_repository
from ..db.queries.runs import get_run
from ..errors import NotFound
from .markdown import render_markdown
from .runs_list import pull_request_url, repository_label
from .templating import render

router = APIRouter()


@router.get("/runs/{run_id}/pull-request", response_class=HTMLResponse)
async def pull_request_page(
    run_id: RowId, request: Request, sc: Ctx, access: Annotated[Access, Depends(READ_RUN)]
) -> Response:
    async with sc.sessions() as session:
        run = await get_run(session, run_id)
        repo = await get_repository(session, run.repository_id) if run else None
        if run is None or repo is None:
            raise NotFound(f"run {run_id} does not exist")
        if run.pr_number is None:
            raise NotFound(f"run {run_id} is not of a pull request")
        comment = await pull_request_comment(
            session, repository_id=repo.id or 0, pr_number=run.pr_number
        )
    elsewhere = pull_request_url(repo, run.pr_number, sc.settings.github_web_url)
    if elsewhere is not None:
        return RedirectResponse(elsewhere, status_code=303)
    return render(
        request,
        "pull_request.html",
        access.principal,
        title=f"Pull request #{run.pr_number}",
        run=run,
        repository=repository_label(repo),
        repository_title=repo.full_name,
        comment=render_markdown(comment.body) if comment else None,
        updated_at=comment.updated_at if comment else None,
    )
