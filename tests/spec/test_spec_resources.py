"""`resources` and `container`: sizes, the `docker run` options allow-list, and their errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from spec_corpus import errors_of, job_with, load, located

from labci_spec import Container, ContainerOptions, Resources, parse_container_options
from labci_spec.fields import MAX_SIZE_BYTES, parse_size

GiB = 2**30

SIZE_CASES: list[tuple[str, Any, int]] = [
    ("16G", "16G", 16 * GiB),
    ("16GB", "16GB", 16 * GiB),
    ("16gib", "16gib", 16 * GiB),
    ("512M", "512M", 512 * 2**20),
    ("1.5GiB", "1.5GiB", 3 * GiB // 2),
    ("spaces", " 1.5 GiB ", 3 * GiB // 2),
    ("0.5K", "0.5K", 512),
    ("2TB", "2TB", 2 * 2**40),
    ("bytes-text", "1024", 1024),
    ("bytes-suffix", "10b", 10),
    ("bytes-int", 1073741824, GiB),
    ("zero", 0, 0),
    ("the-largest", MAX_SIZE_BYTES, MAX_SIZE_BYTES),
]


@pytest.mark.parametrize(
    ("written", "size_bytes"),
    [case[1:] for case in SIZE_CASES],
    ids=[case[0] for case in SIZE_CASES],
)
def test_sizes(written: Any, size_bytes: int) -> None:
    assert parse_size(written) == size_bytes
    resources = Resources.model_validate({"gpus": 1, "memory": written, "gpu-memory": written})
    assert (resources.memory_bytes, resources.gpu_memory_bytes) == (size_bytes, size_bytes)
    dumped = resources.model_dump(mode="json", by_alias=True)
    assert dumped["memory"] == size_bytes
    assert Resources.model_validate(dumped) == resources


SIZE_ERRORS: list[tuple[str, Any, str]] = [
    ("word", "lots", "expected a size such as 16G, 512M or a number of bytes, got 'lots'"),
    ("petabytes", "1P", "expected a size such as 16G, 512M or a number of bytes, got '1P'"),
    ("exponent", "1e3", "expected a size such as 16G, 512M or a number of bytes, got '1e3'"),
    ("negative-text", "-1", "expected a size such as 16G, 512M or a number of bytes, got '-1'"),
    ("unit-without-scale", "10ib", "unknown size unit in '10ib'"),
    ("boolean", True, "expected a size such as 16G, 512M or a number of bytes"),
    ("over-1-EiB", MAX_SIZE_BYTES + 1, "size 1152921504606846977 is too large (at most 1 EiB)"),
    (
        "overflowing-float",
        "9" * 400 + "G",
        "size '9999999999999999999999999999999999999...' is too large (at most 1 EiB)",
    ),
]


@pytest.mark.parametrize(
    ("written", "message"),
    [case[1:] for case in SIZE_ERRORS],
    ids=[case[0] for case in SIZE_ERRORS],
)
def test_size_errors(written: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_size(written)
    assert str(caught.value) == message


OPTIONS_CASES: list[tuple[str, str, ContainerOptions]] = [
    ("empty", "", ContainerOptions()),
    ("init", "--init", ContainerOptions(init=True)),
    ("shm-size-equals", "--shm-size=8G", ContainerOptions(shm_size_bytes=8 * GiB)),
    ("shm-size-separate", "--shm-size 1g", ContainerOptions(shm_size_bytes=GiB)),
    (
        "ulimits",
        "--ulimit nofile=1024:2048 --ulimit memlock=-1",
        ContainerOptions(ulimits={"nofile": (1024, 2048), "memlock": (-1, -1)}),
    ),
    (
        "all-together-quoted",
        "--init  --shm-size='2G' --ulimit \"stack=8192\"",
        ContainerOptions(init=True, shm_size_bytes=2 * GiB, ulimits={"stack": (8192, 8192)}),
    ),
    (
        "last-ulimit-wins",
        "--ulimit nofile=1 --ulimit nofile=2",
        ContainerOptions(ulimits={"nofile": (2, 2)}),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in OPTIONS_CASES],
    ids=[case[0] for case in OPTIONS_CASES],
)
def test_allowed_container_options(text: str, expected: ContainerOptions) -> None:
    assert parse_container_options(text) == expected


NEVER = "privileged containers are never allowed"
REFUSED_OPTIONS: list[tuple[str, str, str]] = [
    ("privileged", "--privileged", f"option '--privileged' is not allowed ({NEVER})"),
    (
        "cap-add",
        "--cap-add SYS_ADMIN",
        "option '--cap-add' is not allowed (extra capabilities are never allowed)",
    ),
    (
        "device",
        "--device /dev/kvm",
        "option '--device' is not allowed (devices are not allowed; GPUs come from `resources.gpus`)",
    ),
    (
        "gpus",
        "--gpus all",
        "option '--gpus' is not allowed (use `resources.gpus`; labci pins the GPUs the scheduler assigns)",
    ),
    (
        "network",
        "--network=host",
        "option '--network' is not allowed (use `container.network` (none or host))",
    ),
    ("net", "--net host", "option '--net' is not allowed (use `container.network` (none or host))"),
    (
        "volume",
        "-v /:/host",
        "option '-v' is not allowed (volumes are not allowed; the workspace and $LABCI_OUTPUT are mounted for you)",
    ),
    (
        "mount",
        "--mount type=bind,src=/,dst=/h",
        "option '--mount' is not allowed (mounts are not allowed; the workspace and $LABCI_OUTPUT are mounted for you)",
    ),
    (
        "ipc",
        "--ipc=host",
        "option '--ipc' is not allowed (sharing IPC is not allowed; for PyTorch data loaders use --shm-size)",
    ),
    (
        "pid",
        "--init --pid=host",
        "option '--pid' is not allowed (sharing the process namespace is not allowed)",
    ),
    (
        "security-opt",
        "--security-opt seccomp=unconfined",
        "option '--security-opt' is not allowed (security options cannot be loosened)",
    ),
    (
        "userns",
        "--userns=host",
        "option '--userns' is not allowed (user namespaces cannot be changed)",
    ),
    (
        "runtime",
        "--runtime=runc",
        "option '--runtime' is not allowed (the runtime is chosen by the runner)",
    ),
    (
        "user",
        "--user 0",
        "option '--user' is not allowed (the user is chosen by the runner (non-root when the image has one))",
    ),
    ("env", "-e A=1", "option '-e' is not allowed (use `env:`)"),
    ("memory", "--memory 1g", "option '--memory' is not allowed (use `resources.memory`)"),
    ("cpus", "--cpus=2", "option '--cpus' is not allowed (use `resources.cpus`)"),
    ("unknown", "--rm", "option '--rm' is not allowed (allowed: --init, --shm-size, --ulimit)"),
    (
        "positional",
        "ubuntu",
        "option 'ubuntu' is not allowed (allowed: --init, --shm-size, --ulimit)",
    ),
    ("init-value", "--init=1", "--init takes no value"),
    ("missing-value", "--shm-size", "--shm-size needs a value"),
    (
        "bad-size",
        "--shm-size=lots",
        "expected a size such as 16G, 512M or a number of bytes, got 'lots'",
    ),
    (
        "ulimit-not-allowed",
        "--ulimit cpu=1",
        "--ulimit 'cpu' is not allowed (allowed: core, memlock, nofile, nproc, stack)",
    ),
    (
        "ulimit-format",
        "--ulimit nofile=a:b",
        "--ulimit 'nofile=a:b': expected nofile=<soft>[:<hard>]",
    ),
    ("unbalanced-quote", "--init 'a", "cannot split options: No closing quotation"),
]


@pytest.mark.parametrize(
    ("text", "message"),
    [case[1:] for case in REFUSED_OPTIONS],
    ids=[case[0] for case in REFUSED_OPTIONS],
)
def test_refused_container_options(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_container_options(text)
    assert str(caught.value) == message
    assert errors_of(job_with(f"container: {{image: x, options: {text!r}}}")) == located(
        f"5:36: jobs.train.container.options: {message}"
    )


VALID_CASES: list[tuple[str, str, Container | None, Resources]] = [
    ("nothing-asked", job_with(), None, Resources()),
    (
        "image-shorthand",
        job_with("container: lab/pytorch:2.4"),
        Container(image="lab/pytorch:2.4"),
        Resources(),
    ),
    (
        "container-mapping",
        job_with("container: {image: lab/pt, options: --init, network: host}"),
        Container(image="lab/pt", options="--init", network="host"),
        Resources(),
    ),
    ("container-null", job_with("container:"), None, Resources()),
    (
        "resources",
        job_with("resources: {gpus: 2, cpus: 7.5, memory: 16G, gpu-memory: 24000M}"),
        None,
        Resources.model_validate(
            {"gpus": 2, "cpus": 7.5, "memory": 16 * GiB, "gpu-memory": 24000 * 2**20}
        ),
    ),
    ("cpus-int", job_with("resources: {cpus: 16}"), None, Resources.model_validate({"cpus": 16.0})),
]


@pytest.mark.parametrize(
    ("text", "container", "resources"),
    [case[1:] for case in VALID_CASES],
    ids=[case[0] for case in VALID_CASES],
)
def test_valid_container_and_resources(
    text: str, container: Container | None, resources: Resources
) -> None:
    job = load(text).jobs["train"]
    assert (job.container, job.resources) == (container, resources)


ERROR_CASES = [
    (
        "gpus-negative",
        job_with("resources: {gpus: -1}"),
        ["5:23: jobs.train.resources.gpus: must be at least 0, got -1"],
    ),
    (
        "gpus-too-many",
        job_with("resources: {gpus: 65}"),
        ["5:23: jobs.train.resources.gpus: must be at most 64, got 65"],
    ),
    (
        "gpus-word",
        job_with("resources: {gpus: two}"),
        ['5:23: jobs.train.resources.gpus: expected an integer, got "two"'],
    ),
    (
        "gpus-true",
        job_with("resources: {gpus: true}"),
        ["5:23: jobs.train.resources.gpus: expected an integer, got true"],
    ),
    (
        "gpus-fraction",
        job_with("resources: {gpus: 0.5}"),
        ["5:23: jobs.train.resources.gpus: expected an integer, got 0.5"],
    ),
    (
        "cpus-zero",
        job_with("resources: {cpus: 0}"),
        ["5:23: jobs.train.resources.cpus: must be more than 0.0, got 0"],
    ),
    (
        "cpus-too-many",
        job_with("resources: {cpus: 2000}"),
        ["5:23: jobs.train.resources.cpus: must be at most 1024.0, got 2000"],
    ),
    (
        "cpus-true",
        job_with("resources: {cpus: true}"),
        ["5:23: jobs.train.resources.cpus: expected a number, got true"],
    ),
    (
        "cpus-infinite",
        job_with("resources: {cpus: .inf}"),
        ["5:23: jobs.train.resources.cpus: expected a number, got .inf"],
    ),
    (
        "memory-unit",
        job_with("resources: {memory: 16X}"),
        [
            "5:25: jobs.train.resources.memory: expected a size such as 16G, 512M or a number of bytes, got '16X'"
        ],
    ),
    (
        "memory-negative",
        job_with("resources: {memory: -1}"),
        ["5:25: jobs.train.resources.memory: must be at least 0, got -1"],
    ),
    (
        "memory-huge",
        job_with("resources: {memory: " + "9" * 400 + "G}"),
        [
            "5:25: jobs.train.resources.memory: size '9999999999999999999999999999999999999...' is too large (at most 1 EiB)"
        ],
    ),
    (
        "gpu-memory-without-gpus",
        job_with("resources: {gpu-memory: 8G}"),
        ["5:16: jobs.train.resources: `gpu-memory` needs `gpus` of at least 1"],
    ),
    (
        "resources-typo",
        job_with("resources: {gpu: 1}"),
        ["5:17: jobs.train.resources: unknown key 'gpu' (did you mean 'gpus'?)"],
    ),
    (
        "resources-list",
        job_with("resources: [gpu]"),
        ["5:16: jobs.train.resources: expected a mapping, got a list"],
    ),
    (
        "image-empty",
        job_with("container: {image: ''}"),
        ["5:24: jobs.train.container.image: must not be empty"],
    ),
    (
        "image-shorthand-empty",
        job_with("container: ''"),
        ["5:16: jobs.train.container: must not be empty"],
    ),
    (
        "image-too-long",
        job_with("container: " + "x" * 600),
        ["5:16: jobs.train.container: is too long: at most 512 characters allowed"],
    ),
    (
        "image-missing",
        job_with("container: {options: --init}"),
        ["5:5: jobs.train.container: missing required key 'image'"],
    ),
    (
        "network-bridge",
        job_with("container: {image: x, network: bridge}"),
        ["5:36: jobs.train.container.network: expected 'none' or 'host', got \"bridge\""],
    ),
    (
        "volumes-key",
        job_with("container: {image: x, volumes: [/data]}"),
        [
            "5:27: jobs.train.container: unknown key 'volumes' (expected one of: image, options, network)"
        ],
    ),
    (
        "options-list",
        job_with("container: {image: x, options: [--init]}"),
        ["5:36: jobs.train.container.options: expected a string, got a list"],
    ),
    (
        "options-value-cut-short",
        job_with("container: {image: x, options: --ulimit nofile=" + "9" * 5000 + "}"),
        [
            "5:36: jobs.train.container.options: --ulimit 'nofile=999999999999999999999999999999...': expected nofile=<soft>[:<hard>]"
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES]
)
def test_container_and_resources_errors(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)
