"""Which executor runs a job, and what this runner can take (sent with every heartbeat).

A job that names `container.image` runs in Docker; so does every job on a runner whose
executor is `docker` (in `LABCI_RUNNER_DEFAULT_IMAGE` when it names none). Other jobs run
as host processes. The runner tells the server what it can take now:

- `host`: jobs without `container:` (the process executor, or the docker executor's
  default image);
- `container`: jobs with `container:`, only while the Docker engine answers — a runner
  whose engine went away takes no container job until it is back;
- `untrusted`: a fork's jobs, only when every job runs in a container here (the docker
  executor alone, its engine answering). A process runner never takes them, and refuses
  one sent anyway: on the host a step could read the machine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from labci_runner.errors import ExecutorError
from labci_runner.executors.base import ExecutionContext, Executor, JobOutcome
from labci_runner.executors.docker import DockerExecutor
from labci_spec import JobInstance


@dataclass(frozen=True)
class Capabilities:
    host: bool
    container: bool
    untrusted: bool = False

    def as_json(self) -> dict[str, bool]:
        return {"host": self.host, "container": self.container, "untrusted": self.untrusted}


class ExecutorChoice:
    """The runner's Executor: hands each job to the process or the docker executor."""

    def __init__(
        self,
        *,
        process: Executor | None,
        docker_executor: DockerExecutor | None,
        containers_only: bool,
    ) -> None:
        self.process = process
        self.docker = docker_executor
        self.containers_only = containers_only

    def in_container(self, instance: JobInstance) -> bool:
        return instance.job.container is not None or self.containers_only

    async def run(self, instance: JobInstance, ctx: ExecutionContext) -> JobOutcome:
        if not ctx.trusted and not (self.containers_only and self.process is None):
            raise ExecutorError(
                "this job runs a fork's code, which runs only on runners whose every job"
                " runs in a container (LABCI_RUNNER_EXECUTOR=docker)"
            )
        if self.in_container(instance):
            if self.docker is None:
                raise ExecutorError("this runner has no docker executor")
            return await self.docker.run(instance, ctx)
        if self.process is None:
            raise ExecutorError("this runner runs jobs only in containers")
        return await self.process.run(instance, ctx)

    async def capabilities(self) -> Capabilities:
        container = self.docker is not None and await asyncio.to_thread(self.docker.engine.answers)
        host = self.process is not None or (
            container and self.docker is not None and bool(self.docker.settings.default_image)
        )
        untrusted = container and self.containers_only and self.process is None
        return Capabilities(host=host, container=container, untrusted=untrusted)
