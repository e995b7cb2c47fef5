"""Workflow files already read, by their git blob id: planning reads only what changed.

A blob id names its content (git hashes the bytes), so a file read once never needs reading
again while its id is the same: most pushes leave `.labci/*.yml` alone, and planning then
costs one request to the forge (the tree listing the ids) instead of one more per file.
The listing itself is always read at the event's commit, so a repository labci can no
longer see fails there, before anything comes from here.

Bounded by bytes, least recently used out first; one per forge client in each process.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

MAX_CACHED_BYTES = 16 * 1024 * 1024


class BlobCache:
    def __init__(self, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._blobs: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0

    def get(self, repo_full_name: str, blob_sha: str) -> bytes | None:
        key = (repo_full_name, blob_sha)
        content = self._blobs.get(key)
        if content is not None:
            self._blobs.move_to_end(key)
        return content

    def put(self, repo_full_name: str, blob_sha: str, content: bytes) -> None:
        """Keep `content` under `blob_sha` if it is that blob (hashed here, whatever the
        forge said), so the cache can never answer with other bytes than git would."""
        key = (repo_full_name, blob_sha)
        if key in self._blobs or len(content) > self.max_bytes:
            return
        if blob_id(content, hex_length=len(blob_sha)) != blob_sha:
            return
        self._blobs[key] = content
        self._bytes += len(content)
        while self._bytes > self.max_bytes:
            _, dropped = self._blobs.popitem(last=False)
            self._bytes -= len(dropped)


def blob_id(content: bytes, *, hex_length: int = 40) -> str:
    """git's id of a blob with these bytes: SHA-1, or SHA-256 in a repository using it."""
    digest = hashlib.sha1 if hex_length == 40 else hashlib.sha256  # noqa: S324 — git's id
    return digest(b"blob %d\0" % len(content) + content).hexdigest()
