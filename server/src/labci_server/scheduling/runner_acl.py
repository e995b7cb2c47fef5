"""Per-runner Redis users (`LABCI_REDIS_RUNNER_ACL`): each runner reaches only its own queue.

At registration the server makes a Redis ACL user for the runner's queue `Q` and hands its
name and password to the runner once; revocation drops the user, which also disconnects it.
The user may run only the commands an arq worker needs, on these keys:

    Q                       the queue (a sorted set of arq job ids)
    Q:*                     the worker's health-check key (`Q:health-check`) and the
                            wake list it blocks on (`Q:wake`, pushed by the server)
    arq:job:Q:*             job payloads  } arq keys every job by `arq:<kind>:<job id>`; the
    arq:in-progress:Q:*     run markers   } server names a runner's jobs `Q:job-<id>-<attempt>`
    arq:retry:Q:*           try counters  } (queue.run_job_id), so another runner's jobs fall
    arq:result:Q:*          results       } outside these patterns
    arq:abort               arq's shared abort set: a finished job ZREMs its id from it

labci never aborts through arq (cancellation travels on the runner's heartbeat) and runners
run with `allow_abort_jobs=False`, so no runner reads `arq:abort`: what one writes there
cannot reach another. The command list works on Redis 6.2 and 7.

The server's own user needs `ACL SETUSER`, `ACL DELUSER` and `ACL SAVE` (deploy/redis/
users.acl); with an `aclfile` the users are saved to it, so they survive a Redis restart.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import redis.asyncio
import redis.exceptions

RUNNER_COMMANDS = (
    # connection: redis-py's handshake, arq's ping and its start-up banner (INFO, DBSIZE)
    "ping auth hello select info dbsize "
    # transactions around a job's start and end
    "watch unwatch multi exec discard "
    # the job's keys and the queue
    "exists get set setex psetex expire pexpire incr incrby del "
    "zcard zrange zrangebyscore zscore zrem zincrby zremrangebyscore "
    # an idle worker blocks on its queue's wake list (`Q:wake`) instead of polling
    "blpop"
).split()
NO_ACL_FILE = "not configured to use an ACL file"


@dataclass(frozen=True)
class RedisCredentials:
    username: str
    password: str


def runner_username(queue_name: str) -> str:
    return queue_name.replace(":", "-")


def runner_acl_rules(queue_name: str) -> list[str]:
    """ACL SETUSER rules (after the user name) for the runner that consumes `queue_name`."""
    keys = [queue_name, f"{queue_name}:*"]
    keys += [f"arq:{kind}:{queue_name}:*" for kind in ("job", "in-progress", "retry", "result")]
    keys.append("arq:abort")
    return [
        "reset",
        "on",
        "resetchannels",
        *(f"~{pattern}" for pattern in keys),
        "-@all",
        *(f"+{command}" for command in RUNNER_COMMANDS),
    ]


async def create_runner_user(
    redis_client: redis.asyncio.Redis, queue_name: str
) -> RedisCredentials:
    """Make (or reset, with a new password) the runner's user and save the ACL file."""
    credentials = RedisCredentials(runner_username(queue_name), secrets.token_urlsafe(32))
    rules = runner_acl_rules(queue_name)
    await redis_client.execute_command(
        "ACL", "SETUSER", credentials.username, *rules, f">{credentials.password}"
    )
    await _save(redis_client)
    return credentials


async def drop_runner_users(redis_client: redis.asyncio.Redis, queue_names: list[str]) -> None:
    """Remove the runners' users; Redis disconnects their open connections."""
    if queue_names:
        await redis_client.execute_command(
            "ACL", "DELUSER", *(runner_username(name) for name in queue_names)
        )
        await _save(redis_client)


async def _save(redis_client: redis.asyncio.Redis) -> None:
    try:
        await redis_client.execute_command("ACL", "SAVE")
    except redis.exceptions.ResponseError as exc:
        if NO_ACL_FILE not in str(exc):
            raise
