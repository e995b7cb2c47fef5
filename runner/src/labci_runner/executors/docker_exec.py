"""`docker exec` plumbing of the docker executor: output, signals, exit codes, memory.

A step's output is read in a thread from the exec's raw socket (closed here: the SDK's
stream object leaks it) and handed to the event loop with backpressure, line by line,
stdout and stderr apart; a line over the limit is cut and marked. A step's process group
is signalled from the host when the engine runs on this machine, else from inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.utils.socket import STDERR, frames_iter

from labci_runner.executors.lines import LineSplitter
from labci_runner.logs import LogSink

log = logging.getLogger(__name__)

UNREACHABLE = (docker.errors.DockerException, OSError)


def signal_group(
    container: Container, exec_id: str, pidfile: str, sig: signal.Signals, *, local: bool
) -> None:
    """Signal the step's process group: from the host by the exec's pid when the engine runs
    on this machine (works even when the container has no pid left to spare), else from
    inside the container. A remote engine's pids mean nothing here: never signal them."""
    host_pid = None
    if local:
        try:
            host_pid = container.client.api.exec_inspect(exec_id).get("Pid")
        except (docker.errors.APIError, *UNREACHABLE):
            host_pid = None
    if host_pid:
        try:
            os.killpg(int(host_pid), sig)
            return
        except ProcessLookupError:
            return  # the group is empty
        except PermissionError:
            pass  # a remote engine, or another user's processes: ask the container
    name = sig.name.removeprefix("SIG")
    script = 'read p < "$0" && { kill -s "$1" -"$p" 2>/dev/null || kill -s "$1" "$p"; }'
    with contextlib.suppress(docker.errors.APIError, *UNREACHABLE):
        container.exec_run(["/bin/sh", "-c", script, pidfile, name], user="0")


# Reads the container's own cgroup with shell builtins only (v2 first, then v1).
_OOM_SCRIPT = (
    "for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do"
    ' if [ -r "$f" ]; then while read k v; do [ "$k" = oom_kill ] && echo "$v";'
    ' done < "$f"; exit 0; fi; done'
)


def oom_kills(container: Container) -> int | None:
    try:
        result = container.exec_run(["/bin/sh", "-c", _OOM_SCRIPT], user="0")
    except (docker.errors.APIError, *UNREACHABLE):
        return None
    text = result.output.decode(errors="replace").strip() if result.output else ""
    return int(text) if text.isdigit() else None


def exit_code(container: Container, exec_id: str) -> int | None:
    try:
        code = container.client.api.exec_inspect(exec_id).get("ExitCode")
    except (docker.errors.APIError, *UNREACHABLE):
        return None
    return int(code) if code is not None else None


class ExecReader:
    """Reads one exec's output in a thread; lines go to the log, in order, with backpressure."""

    def __init__(
        self,
        container: Container,
        exec_id: str,
        logs: LogSink,
        step: int,
        on_stdout: Callable[[str], None] | None,
    ) -> None:
        self.container = container
        self.exec_id = exec_id
        self.logs = logs
        self.step = step
        self.on_stdout = on_stdout

    async def pump(self, max_line_bytes: int) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=256)
        thread = asyncio.to_thread(self._read, loop, queue)
        reading = asyncio.ensure_future(thread)
        splitters = {
            "stdout": LineSplitter(max_line_bytes),
            "stderr": LineSplitter(max_line_bytes),
        }
        while (item := await queue.get()) is not None:
            stream, chunk = item
            for line in splitters[stream].feed(chunk):
                await self._emit(stream, line)
        for stream, splitter in splitters.items():
            for line in splitter.close():
                await self._emit(stream, line)
        await reading

    async def _emit(self, stream: str, line: str) -> None:
        if stream == "stdout" and self.on_stdout is not None:
            self.on_stdout(line)
        await self.logs.write(self.step, stream, line)  # type: ignore[arg-type]

    def _read(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        def put(item: Any) -> None:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        sock = None
        try:
            # The raw socket, closed below: the SDK's stream object leaks it (ResourceWarning).
            sock = self.container.client.api.exec_start(self.exec_id, socket=True)
            for stream, data in frames_iter(sock, tty=False):
                if data:
                    put(("stderr" if stream == STDERR else "stdout", data))
        except (docker.errors.APIError, *UNREACHABLE) as exc:
            log.warning("step %d: output stream ended: %s", self.step, exc)
        finally:
            if sock is not None:
                inner = getattr(sock, "_sock", None)
                sock.close()
                if inner is not None:
                    inner.close()
            put(None)
