"""A job's log, live (issue 13, item 3): Server-Sent Events (sse-starlette) that carry each
new stretch of lines as HTML the run page's script puts in their steps, then an `end`
event when the attempt is over.

Lines live in SQL, written by the runner's uploads; the stream reads what is new every
POLL_S (one indexed range query per open page: a lab has a handful of viewers, and no
second copy of the log is kept elsewhere). Each event's id is the last line's seq, so a
browser that reconnects (EventSource does so by itself) sends Last-Event-ID and gets only
what it has not seen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..api.deps import Ctx, RowId
from ..auth.policies import READ_JOB, Access, policy
from ..context import ServerContext
from ..db.models import TERMINAL_JOB_STATES, LogLine
from ..db.queries import jobs as job_queries
from ..errors import BadRequest, NotFound
from .templating import TEMPLATES, render

router = APIRouter()
LINES = TEMPLATES.env.get_template("log_lines.html")
EARLIER = TEMPLATES.env.get_template("earlier_link.html")

POLL_S = 0.5
LINES_PER_EVENT = 500
# A browser holds a stream while its page is open; past this it is ended (the browser
# reconnects from where it was), so no stream outlives a forgotten tab by much.
MAX_STREAM_S = 30 * 60


def lines_html(job_id: int, lines: Sequence[LogLine | dict[str, Any]]) -> str:
    """Lines as the run page shows them (templates/log_lines.html)."""
    rows = [line.model_dump() if isinstance(line, LogLine) else line for line in lines]
    return LINES.render(job_id=job_id, lines=rows)


def earlier_html(job_id: int, before_seq: int) -> str:
    """The "show earlier" control at the top of a log that starts past its first line."""
    return EARLIER.render(job_id=job_id, before=before_seq)


async def _events(
    sc: ServerContext, request: Request, job_id: int, attempt: int, after: int, for_s: float
) -> AsyncIterator[ServerSentEvent]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + for_s
    while loop.time() < deadline:
        async with sc.sessions() as session:
            # The job first, then its lines: a runner reports a job finished only once all
            # its lines are stored, so an end seen here has every line in the read below.
            job = await job_queries.get_job(session, job_id)
            lines = await job_queries.log_lines_after(
                session, job_id=job_id, attempt=attempt, after_seq=after, limit=LINES_PER_EVENT
            )
        if lines:
            after = lines[-1].seq
            yield ServerSentEvent(data=lines_html(job_id, lines), event="lines", id=str(after))
            continue  # more may be waiting: read again at once
        if job is None or job.attempt != attempt or job.state in TERMINAL_JOB_STATES:
            state = job.state if job and job.attempt == attempt else "retried"
            yield ServerSentEvent(data=state, event="end", id=str(after))
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)


@router.get("/jobs/{job_id}/logs/stream", dependencies=policy(READ_JOB))
async def log_stream(
    job_id: RowId,
    request: Request,
    sc: Ctx,
    after: Annotated[int, Query(ge=-1, le=2**31 - 1)] = -1,
    for_s: Annotated[int, Query(ge=1, le=MAX_STREAM_S)] = MAX_STREAM_S,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
    """New lines of the job's current attempt after seq `after` (or Last-Event-ID), for at
    most `for_s` seconds (a script that wants a bounded look; browsers reconnect)."""
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise BadRequest("Last-Event-ID must be a line's seq")
        after = max(after, int(last_event_id))
    async with sc.sessions() as session:
        job = await job_queries.get_job(session, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    events = _events(sc, request, job_id, job.attempt, after, for_s)
    return EventSourceResponse(events, ping=15)


RAW_CHUNK_LINES = 5000
EARLIER_LINES = 5000
# Sent by the run page's script when it fetches earlier lines to put in their steps.
FRAGMENT_HEADER = "x-labci-fragment"


@router.get("/jobs/{job_id}/log", response_class=HTMLResponse)
async def earlier_lines(
    job_id: RowId,
    request: Request,
    sc: Ctx,
    access: Annotated[Access, Depends(READ_JOB)],
    before: Annotated[int, Query(ge=0, le=2**31 - 1)],
) -> HTMLResponse:
    """The EARLIER_LINES lines of the current attempt before seq `before`, as the run page
    shows them, headed by the control for the stretch before those: the bare lines for the
    page's script (it asks with FRAGMENT_HEADER), a page of their own for a browser that
    followed the link without script."""
    async with sc.sessions() as session:
        job = await job_queries.get_job(session, job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist")
        lines = await job_queries.log_lines_before(
            session, job_id=job_id, attempt=job.attempt, before_seq=before, limit=EARLIER_LINES
        )
    head = earlier_html(job_id, lines[0].seq) if lines and lines[0].seq > 0 else ""
    if request.headers.get(FRAGMENT_HEADER) == "1":
        return HTMLResponse(head + lines_html(job_id, lines))
    return render(
        request,
        "log_page.html",
        access.principal,
        title=f"{job.job_key}: lines before {before + 1}",
        job=job,
        before=before,
        earlier=lines[0].seq if lines and lines[0].seq > 0 else None,
        lines=[line.model_dump() for line in lines],
    )


@router.get("/jobs/{job_id}/log.txt", dependencies=policy(READ_JOB))
async def raw_log(
    job_id: RowId,
    sc: Ctx,
    attempt: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> StreamingResponse:
    """An attempt's whole log (the current one unless `attempt` names an earlier one) as
    plain text, read and sent a chunk at a time (a million-line log never sits in memory)."""
    async with sc.sessions() as session:
        job = await job_queries.get_job(session, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    if attempt is None:
        attempt = job.attempt
    elif attempt > job.attempt:
        raise NotFound(f"job {job_id} has no attempt {attempt} (its latest is {job.attempt})")

    async def chunks() -> AsyncIterator[bytes]:
        after = -1
        while True:
            async with sc.sessions() as session:
                lines = await job_queries.log_lines_after(
                    session, job_id=job_id, attempt=attempt, after_seq=after, limit=RAW_CHUNK_LINES
                )
            if not lines:
                return
            after = lines[-1].seq
            yield "".join(line.text + "\n" for line in lines).encode()

    name = f"labci-job-{job_id}-attempt-{attempt}.log"
    return StreamingResponse(
        chunks(),
        media_type="text/plain; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )
