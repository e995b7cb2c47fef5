"""Compare two runs (issue 13, item 4): `/runs/A/compare?with=B` shows, for each check
both ran, B against A judged as a pull request's verdict would be, and both runs'
reproducibility records with what differs marked (image digest, GPU, driver, seeds).

The route's policy reads run A; the handler checks B the same way before anything of it
is read, so neither run is shown to someone who may not read it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from ..api.deps import Ctx, RowId
from ..auth.policies import READ_RUN, Access, require_level
from ..db.queries.visible import repository_of_run
from ..results.comment_render import METRIC_HEADERS, decision_footer, metric_cells
from ..results.run_compare import compare_runs
from .templating import render

router = APIRouter()


@router.get("/runs/{run_id}/compare", response_class=HTMLResponse)
async def compare_page(
    run_id: RowId,
    request: Request,
    sc: Ctx,
    access: Annotated[Access, Depends(READ_RUN)],
    with_: Annotated[int, Query(alias="with", ge=1, le=2**31 - 1)],
) -> HTMLResponse:
    async with sc.sessions() as session:
        other = await repository_of_run(session, with_)
    await require_level(sc, request, access.principal, other, "read")
    found = await compare_runs(sc, run_id, with_)
    contexts = [
        {
            "context": c.context,
            "rows": [metric_cells(row) for row in c.rows],
            "verdicts": [row["verdict"] for row in c.rows],
            "footer": decision_footer({"decision": c.decision}) if c.rows else None,
            "hardware": c.hardware,
            "record": c.record,
        }
        for c in found["contexts"]
    ]
    return render(
        request,
        "compare.html",
        access.principal,
        title=f"Run #{run_id} against #{with_}",
        a=found["a"],
        b=found["b"],
        contexts=contexts,
        only_a=found["only_a"],
        only_b=found["only_b"],
        headers=METRIC_HEADERS,
    )
