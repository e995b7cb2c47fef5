"""Secrets over HTTP: a repository's (admin permission on it) and the server's (server
administrators). Names, times and who set them go out; a value never does."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from ..auth.policies import ADMIN_REPO, SERVER_ADMIN, Access, policy
from ..errors import NotFound
from ..secrets import Scope, delete_secret, list_secrets, put_secret
from .bodies import body_doc, json_body
from .deps import Ctx

router = APIRouter(prefix="/api/v1")

REPO_SECRETS = "/repos/{owner}/{repo}/secrets"
SERVER_SECRETS = "/secrets"


class SecretValue(BaseModel):
    """The body of a PUT: the value, at least 8 characters, at most 48 KiB."""

    model_config = ConfigDict(extra="forbid")
    value: str


Body = Annotated[SecretValue, Depends(json_body(SecretValue))]
RepoAdmin = Annotated[Access, Depends(ADMIN_REPO)]


def repository_scope(access: Access) -> Scope:
    if access.repository is None:  # ADMIN_REPO found it; a 404 should that change
        raise NotFound("no such repository here")
    return Scope.of_repository(access.repository)


async def _put(sc: Ctx, scope: Scope, name: str, body: SecretValue, by: str) -> JSONResponse:
    stored = await put_secret(sc.settings, sc.sessions, scope, name=name, value=body.value, by=by)
    return JSONResponse(stored, status_code=201 if stored["created"] else 200)


@router.get(REPO_SECRETS)
async def list_repository_secrets(
    owner: str, repo: str, sc: Ctx, access: RepoAdmin
) -> list[dict[str, Any]]:
    """The repository's secrets: names, when they were made and changed, and by whom."""
    return await list_secrets(sc.sessions, repository_scope(access))


@router.put(REPO_SECRETS + "/{name}", openapi_extra=body_doc(SecretValue))
async def put_repository_secret(
    owner: str, repo: str, name: str, sc: Ctx, access: RepoAdmin, body: Body
) -> JSONResponse:
    """Create (201) or replace (200) a secret of the repository."""
    return await _put(sc, repository_scope(access), name, body, access.principal.name)


@router.delete(REPO_SECRETS + "/{name}")
async def delete_repository_secret(
    owner: str, repo: str, name: str, sc: Ctx, access: RepoAdmin
) -> dict[str, str]:
    return {"deleted": await delete_secret(sc.sessions, repository_scope(access), name=name)}


@router.get(SERVER_SECRETS, dependencies=policy(SERVER_ADMIN))
async def list_server_secrets(sc: Ctx) -> list[dict[str, Any]]:
    """Server-wide secrets, which every repository's trusted jobs may reference."""
    return await list_secrets(sc.sessions, Scope.server())


@router.put(SERVER_SECRETS + "/{name}", openapi_extra=body_doc(SecretValue))
async def put_server_secret(
    name: str, sc: Ctx, access: Annotated[Access, Depends(SERVER_ADMIN)], body: Body
) -> JSONResponse:
    """Create (201) or replace (200) a server-wide secret; a repository's own of the same
    name wins for its jobs."""
    return await _put(sc, Scope.server(), name, body, access.principal.name)


@router.delete(SERVER_SECRETS + "/{name}", dependencies=policy(SERVER_ADMIN))
async def delete_server_secret(name: str, sc: Ctx) -> dict[str, str]:
    return {"deleted": await delete_secret(sc.sessions, Scope.server(), name=name)}
