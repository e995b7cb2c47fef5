"""The workflow-file cache keeps only bytes that are the blob named, within its budget."""

from __future__ import annotations

import subprocess

from labci_server.forge.blob_cache import BlobCache, blob_id


def test_blob_id_is_gits() -> None:
    done = subprocess.run(
        ["git", "hash-object", "--stdin"], input=b"name: a\n", capture_output=True, check=True
    )
    assert blob_id(b"name: a\n") == done.stdout.decode().strip()


def test_bytes_that_are_not_the_named_blob_are_not_kept() -> None:
    cache = BlobCache()
    cache.put("octo/exp", blob_id(b"name: a\n"), b"name: b\n")
    assert cache.get("octo/exp", blob_id(b"name: a\n")) is None


def test_least_recently_used_goes_first_when_over_budget() -> None:
    cache = BlobCache(max_bytes=20)
    texts = [b"a" * 8, b"b" * 8, b"c" * 8]
    cache.put("octo/exp", blob_id(texts[0]), texts[0])
    cache.put("octo/exp", blob_id(texts[1]), texts[1])
    assert cache.get("octo/exp", blob_id(texts[0])) == texts[0]  # now the most recent
    cache.put("octo/exp", blob_id(texts[2]), texts[2])
    kept = [cache.get("octo/exp", blob_id(t)) for t in texts]
    assert kept == [texts[0], None, texts[2]]
    assert cache.get("other/repo", blob_id(texts[0])) is None
