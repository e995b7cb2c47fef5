"""The Docker engine a runner uses: its address, whether it answers, and SDK clients.

Whether the engine answers is asked with a plain `GET /_ping` on its socket first: the
Docker SDK leaks a socket each time a connection to a Unix socket fails, and a runner
asks at every heartbeat. The SDK speaks a fixed API version (Docker 20.10's, which has
device requests for GPUs), so making a client never connects by itself.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass

import docker

API_VERSION = "1.41"
DEFAULT_URL = "unix:///var/run/docker.sock"
PING_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class DockerEngine:
    url: str = DEFAULT_URL

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version=API_VERSION)

    def answers(self) -> bool:
        """Whether the engine answers a ping now (blocking; call from a thread)."""
        if self.url.startswith("unix://"):
            return _ping_unix(self.url.removeprefix("unix://"))
        try:
            client = self.client()
        except (docker.errors.DockerException, OSError):
            return False
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, OSError):
            return False
        finally:
            client.close()


def _ping_unix(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(PING_TIMEOUT_S)
        with contextlib.suppress(OSError):
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0].split()
            return status_line[1:2] == [b"200"]
    return False
