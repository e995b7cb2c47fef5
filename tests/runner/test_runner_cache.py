"""The runner's `cache:` store, on real files: hashFiles, scopes, immutability, bounds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labci_runner.cache import CacheScope, Restored, RunnerCache, cache_scope, hash_files

MAIN = CacheScope("repo", ("branch:main",), "branch:main")
PR = CacheScope("repo", ("pr:7", "branch:main"), "pr:7")
OTHER_REPO = CacheScope("other", ("branch:main",), "branch:main")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    write(ws, {"requirements.txt": "torch\n", "data/a.bin": "aaaa", "data/sub/b.bin": "bb"})
    return ws


@pytest.fixture
def cache(tmp_path: Path) -> RunnerCache:
    return RunnerCache(tmp_path / "cache", max_bytes=10_000, max_entry_bytes=5_000)


def fresh(tmp_path: Path, name: str) -> Path:
    ws = tmp_path / name
    ws.mkdir()
    return ws


def test_hash_files_follows_the_files_it_matches(workspace: Path) -> None:
    first = hash_files(workspace, ["requirements.txt"])
    assert len(first) == 64
    assert hash_files(workspace, ["requirements.txt"]) == first
    assert hash_files(workspace, ["**.txt"]) == first
    assert hash_files(workspace, ["nothing/**"]) == ""
    assert hash_files(workspace, ["data/**", "!data/sub/**"]) != hash_files(workspace, ["data/**"])
    write(workspace, {".git/HEAD": "ref", "requirements.txt": "torch==2.4\n"})
    assert hash_files(workspace, ["requirements.txt"]) != first
    assert hash_files(workspace, ["**/HEAD"]) == ""  # .git is never hashed


def test_save_then_restore_in_a_fresh_workspace(
    workspace: Path, cache: RunnerCache, tmp_path: Path
) -> None:
    assert cache.restore(MAIN, "k1", workspace, ["data"]) == Restored(False, "cache miss: key 'k1'")
    said = cache.save(MAIN, "k1", workspace, ["data", "requirements.txt", "absent"])
    assert said == "cache saved: key 'k1' to branch:main (12 bytes)"
    ws2 = fresh(tmp_path, "ws2")
    assert cache.restore(MAIN, "k1", ws2, ["data", "requirements.txt", "absent"]) == Restored(
        True, "cache restored: key 'k1' from branch:main"
    )
    assert (ws2 / "data" / "sub" / "b.bin").read_text() == "bb"
    assert (ws2 / "requirements.txt").read_text() == "torch\n"
    assert not (ws2 / "absent").exists()


def test_entries_never_change(workspace: Path, cache: RunnerCache, tmp_path: Path) -> None:
    cache.save(MAIN, "k", workspace, ["data"])
    write(workspace, {"data/a.bin": "changed"})
    assert cache.save(MAIN, "k", workspace, ["data"]) == (
        "cache not saved: key 'k' exists already (entries never change)"
    )
    ws2 = fresh(tmp_path, "ws2")
    cache.restore(MAIN, "k", ws2, ["data"])
    assert (ws2 / "data" / "a.bin").read_text() == "aaaa"


def test_pull_requests_cannot_poison_the_base_branch(
    workspace: Path, cache: RunnerCache, tmp_path: Path
) -> None:
    write(workspace, {"data/a.bin": "poison"})
    assert cache.save(PR, "k", workspace, ["data"]).endswith("to pr:7 (8 bytes)")
    main_ws = fresh(tmp_path, "main")
    assert not cache.restore(MAIN, "k", main_ws, ["data"]).hit
    assert not cache.restore(OTHER_REPO, "k", main_ws, ["data"]).hit


def test_pull_requests_restore_from_their_base_branch(
    workspace: Path, cache: RunnerCache, tmp_path: Path
) -> None:
    cache.save(MAIN, "k", workspace, ["data"])
    pr_ws = fresh(tmp_path, "pr")
    assert cache.restore(PR, "k", pr_ws, ["data"]).message == (
        "cache restored: key 'k' from branch:main"
    )


def test_an_entry_over_the_limit_is_not_saved(
    workspace: Path, cache: RunnerCache, tmp_path: Path
) -> None:
    write(workspace, {"data/big.bin": "x" * 6_000})
    assert cache.save(MAIN, "big", workspace, ["data"]) == "cache not saved: more than 5000 bytes"
    assert not cache.restore(MAIN, "big", fresh(tmp_path, "w"), ["data"]).hit
    assert not list((tmp_path / "cache").glob(".staging-*"))


def test_least_recently_used_entries_are_evicted(
    workspace: Path, cache: RunnerCache, tmp_path: Path
) -> None:
    write(workspace, {"blob": "x" * 4_000})
    for age, key in enumerate(("old", "used"), start=1):
        cache.save(MAIN, key, workspace, ["blob"])
        meta = next(p for p in (tmp_path / "cache").glob("*/*/*/meta.json") if key in p.read_text())
        os.utime(meta, (age * 1000, age * 1000))  # long unused: entries age by this mtime
    cache.save(MAIN, "new", workspace, ["blob"])
    entries = list((tmp_path / "cache").glob("*/*/*/meta.json"))
    assert len(entries) == 2  # 3 × 4000 bytes > 10000: the oldest went
    assert not cache.restore(MAIN, "old", fresh(tmp_path, "a"), ["blob"]).hit
    assert cache.restore(MAIN, "new", fresh(tmp_path, "b"), ["blob"]).hit


def test_entries_in_use_are_not_evicted(
    workspace: Path, cache: RunnerCache, tmp_path: Path
) -> None:
    write(workspace, {"blob": "x" * 4_000})
    for key in ("a", "b", "c"):  # all saved (or restored) just now: none may go mid-restore
        cache.save(MAIN, key, workspace, ["blob"])
    assert len(list((tmp_path / "cache").glob("*/*/*/meta.json"))) == 3


def test_nothing_to_keep_saves_nothing(workspace: Path, cache: RunnerCache) -> None:
    assert cache.save(MAIN, "k", workspace, ["absent", "gone"]) == (
        "cache not saved: none of absent, gone exists"
    )
    assert not cache.restore(MAIN, "k", workspace, ["absent"]).hit


@pytest.mark.parametrize("layout", ["path-is-link", "link-inside-dir"], ids=str)
def test_restore_never_writes_through_links_in_the_checkout(
    workspace: Path, cache: RunnerCache, tmp_path: Path, layout: str
) -> None:
    """A pull request commits links where a cached directory will be restored."""
    write(workspace, {"data/sub/authorized_keys": "attacker key"})
    cache.save(PR, "k", workspace, ["data"])
    target_home = tmp_path / "runner-home"
    target_home.mkdir()
    ws2 = fresh(tmp_path, "ws2")
    if layout == "path-is-link":
        (ws2 / "data").symlink_to(target_home)
    else:
        (ws2 / "data").mkdir()
        (ws2 / "data" / "sub").symlink_to(target_home)
    assert cache.restore(PR, "k", ws2, ["data"]).hit
    assert list(target_home.iterdir()) == []
    assert not (ws2 / "data").is_symlink()
    assert (ws2 / "data" / "sub" / "authorized_keys").read_text() == "attacker key"


def test_a_link_among_the_parents_is_refused(
    workspace: Path, cache: RunnerCache, tmp_path: Path
) -> None:
    write(workspace, {"deep/data/x": "1"})
    cache.save(MAIN, "k", workspace, ["deep/data"])
    outside = tmp_path / "outside"
    outside.mkdir()
    ws2 = fresh(tmp_path, "ws2")
    (ws2 / "deep").symlink_to(outside)
    with pytest.raises(ValueError, match="goes through a link"):
        cache.restore(MAIN, "k", ws2, ["deep/data"])
    assert list(outside.iterdir()) == []


def test_paths_leading_out_of_the_workspace_are_refused(
    workspace: Path, cache: RunnerCache, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    write(outside, {"secret.txt": "host secret"})
    (workspace / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="goes through a link"):
        cache.save(MAIN, "k", workspace, ["link/secret.txt"])
    # A link itself is kept as a link: the host's bytes never enter the cache.
    cache.save(MAIN, "k2", workspace, ["link"])
    stored = list((tmp_path / "cache").rglob("secret.txt"))
    assert stored == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"LABCI_EVENT": "push", "LABCI_BRANCH": "main"},
            CacheScope("r", ("branch:main",), "branch:main"),
        ),
        (
            {"LABCI_EVENT": "pull_request", "LABCI_PR_NUMBER": "3", "LABCI_BASE_BRANCH": "main"},
            CacheScope("r", ("pr:3", "branch:main"), "pr:3"),
        ),
    ],
    ids=["push", "pull-request"],
)
def test_cache_scope(env: dict[str, str], expected: CacheScope) -> None:
    assert cache_scope("r", env) == expected
