"""Placement and queue order, without I/O: best fit, resources, the reasons a job can never
be placed, and properties over random fleets and job mixes (Hypothesis) run through the
very functions the scheduler runs (placement.rooms, order.plan_assignments)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from labci_server.db.models import Job, Runner
from labci_server.scheduling.order import Candidate, plan_assignments
from labci_server.scheduling.placement import best_fit, held_by, never_placeable, rooms
from labci_server.scheduling.shapes import Shape, shape_of

GIB = 1024**3


def gpus(*sizes_gib: int, unhealthy: tuple[int, ...] = ()) -> dict:
    return {
        "gpus": [
            {"id": str(i), "model": "GPU", "memory_mib": size * 1024, "healthy": i not in unhealthy}
            for i, size in enumerate(sizes_gib)
        ]
    }


def runner(rid: int, labels=("gpu",), slots=8, gpu=None, cpus=None, memory=None, caps=None):
    resources = None
    if cpus is not None or memory is not None:
        resources = {"cpus": cpus or 64, "memory_bytes": memory or 512 * GIB}
    return Runner(
        id=rid,
        name=f"r{rid}",
        labels=list(labels),
        slots=slots,
        token_hash=f"t{rid}",
        gpus=gpu,
        resources=resources,
        capabilities=caps or {"host": True, "container": True, "untrusted": True},
    )


def job(jid: int, *, labels=("gpu",), repo=1, priority=0, run=None, **resources) -> Job:
    res = {k.replace("_", "-"): v for k, v in resources.items()}
    return Job(
        id=jid,
        run_id=run or jid,
        job_key=f"j{jid}",
        workflow_job=f"j{jid}",
        context="labci/x",
        spec={"job": {"resources": res}},
        runs_on=list(labels),
        timeout_s=60,
        repository_id=repo,
        priority=priority,
    )


def place(fleet: list[Runner], active: list[Job], queue: list[Job]) -> list[tuple[Job, int, list]]:
    """One pass over `queue` (in order), as the scheduler makes it; (job, runner, gpu ids)."""
    room = rooms(fleet, held_by(active))
    keyed = [(j, shape_of(j, trusted=True)) for j in queue]
    fitting = {s.key(): [r for r in room.values() if r.fits(s)] for _, s in keyed}
    ranks: Counter = Counter()
    candidates = []
    for j, s in keyed:
        candidates.append(Candidate(j, s, s.key(), ranks[(s.key(), j.repository_id)]))
        ranks[(s.key(), j.repository_id)] += 1
    planned = plan_assignments(
        candidates, fitting, active_by_repository={}, last_served={}, limits={}, groups={}
    )
    return [(a.job, a.runner.id, a.gpu_ids) for a in planned]


def test_best_fit_leaves_whole_machines_for_big_gpu_jobs():
    """A 1-GPU job goes to the machine with one GPU free, not the one with four, so the
    4-GPU job after it still finds its four. First fit (the freest machine) strands it."""
    fleet = [runner(1, gpu=gpus(80, 80, 80, 80)), runner(2, gpu=gpus(80, 80))]
    busy = job(100, gpus=1)
    busy.runner_id, busy.gpu_ids, busy.state = 2, ["0"], "running"
    placed = place(fleet, [busy], [job(1, gpus=1), job(2, gpus=4)])
    assert [(j.id, r, ids) for j, r, ids in placed] == [(1, 2, ["1"]), (2, 1, ["0", "1", "2", "3"])]
    # What first fit would have done: the 1-GPU job on the freest machine, and then the
    # 4-GPU job fits nowhere.
    first_fit = rooms(fleet, held_by([busy]))
    first_fit[1].take(Shape(("gpu",), gpus=1))
    assert best_fit(Shape(("gpu",), gpus=4), first_fit.values()) is None


def test_gpu_memory_cpus_and_memory_are_placed_within_what_runners_have():
    fleet = [
        runner(1, gpu=gpus(24, 24), cpus=8, memory=32 * GIB),
        runner(2, gpu=gpus(80, 24), cpus=32, memory=256 * GIB),
    ]
    placed = place(
        fleet,
        [],
        [
            job(1, gpus=1, gpu_memory=40 * GIB),  # only runner 2's 80 GiB GPU is big enough
            job(2, gpus=1, gpu_memory=40 * GIB),  # ... and it is taken now
            job(3, gpus=1, gpu_memory=16 * GIB),  # best fit: the smallest GPU that fits
            job(4, labels=(), cpus=16),  # only runner 2 has 16 CPUs
            job(5, labels=(), memory=300 * GIB),  # nobody has that much: waits
        ],
    )
    assert [(j.id, r, ids) for j, r, ids in placed] == [
        (1, 2, ["0"]),
        (3, 2, ["1"]),
        (4, 2, []),
    ]


def test_memory_as_hardware_reports_it_meets_memory_as_declared():
    """`gpu-memory: 80G` (80 GiB) on an "80 GB" GPU that reports 81,559 MiB; `memory: 64G`
    on a machine that reports 62.8 GiB."""
    h100 = {"gpus": [{"id": "0", "memory_mib": 81559, "healthy": True}]}
    fleet = [runner(1, gpu=h100, memory=int(62.8 * GIB))]
    placed = place(fleet, [], [job(1, gpus=1, gpu_memory=80 * GIB, memory=64 * GIB)])
    assert [(j.id, r, ids) for j, r, ids in placed] == [(1, 1, ["0"])]
    assert place(fleet, [], [job(2, gpus=1, gpu_memory=96 * GIB)]) == []


def test_reasons_a_job_can_never_be_placed():
    fleet = [
        runner(1, labels=("gpu", "a100"), gpu=gpus(40, 40), cpus=16, memory=64 * GIB),
        runner(2, labels=("cpu",)),
    ]
    shape = Shape(("gpu", "a100"), gpus=4)
    assert never_placeable(shape, fleet) == (
        "no runner with [gpu, a100] and ≥ 4 GPUs (the largest has 2 GPUs)"
    )
    assert never_placeable(Shape(("tpu",)), fleet) == "no runner with [tpu]"
    big = Shape(("gpu",), gpus=1, gpu_memory_bytes=80 * GIB, cpus=32)
    assert never_placeable(big, fleet) == (
        "no runner with [gpu] and ≥ 1 GPU of ≥ 80 GiB, ≥ 32 CPUs"
        " (the largest has 0 GPUs of ≥ 80 GiB, 16 CPUs)"
    )
    # Unhealthy GPUs count: a GPU can recover; a job for it waits rather than fails.
    sick = [runner(3, gpu=gpus(80, 80, unhealthy=(0, 1)))]
    assert never_placeable(Shape(("gpu",), gpus=2), sick) is None
    assert never_placeable(Shape(("gpu",), gpus=2), []) is None  # no fleet yet: no verdict
    # Registered, no heartbeat yet: what it has is not known, so nothing is decided...
    fresh = runner(4, labels=("gpu",))
    assert never_placeable(Shape(("gpu",), gpus=1), [fresh]) is None
    # ... until a heartbeat says its size and no GPUs.
    fresh.resources = {"cpus": 8, "memory_bytes": 16 * GIB}
    assert never_placeable(Shape(("gpu",), gpus=1), [fresh]) == (
        "no runner with [gpu] and ≥ 1 GPU (the largest has 0 GPUs)"
    )


def test_a_job_without_gpus_keeps_off_gpu_machines():
    fleet = [runner(1, labels=("cpu",), gpu=gpus(80)), runner(2, labels=("cpu",))]
    placed = place(fleet, [], [job(1, labels=("cpu",))])
    assert [r for _, r, _ in placed] == [2]


# Properties over random fleets and job mixes.

LABELS = ("gpu", "cpu", "a100", "big")

fleets = st.lists(
    st.builds(
        lambda labels, slots, sizes, unhealthy, cpus, mem: (
            labels,
            slots,
            sizes,
            unhealthy,
            cpus,
            mem,
        ),
        st.sets(st.sampled_from(LABELS), min_size=1),
        st.integers(1, 6),
        st.lists(st.sampled_from([16, 24, 40, 80]), max_size=8),
        st.sets(st.integers(0, 7), max_size=2),
        st.sampled_from([None, 4, 16, 64]),
        st.sampled_from([None, 16, 128]),
    ),
    min_size=1,
    max_size=6,
)

mixes = st.lists(
    st.builds(
        lambda labels, g, gm, c, m, repo, prio: (labels, g, gm, c, m, repo, prio),
        st.sets(st.sampled_from(LABELS), max_size=2),
        st.sampled_from([0, 0, 1, 2, 4, 8]),
        st.sampled_from([0, 0, 20, 40, 100]),
        st.sampled_from([0, 0, 2, 8, 32]),
        st.sampled_from([0, 0, 8, 64, 256]),
        st.integers(1, 4),
        st.sampled_from([0, 0, 1]),
    ),
    min_size=1,
    max_size=40,
)


def build(fleet_spec, mix_spec) -> tuple[list[Runner], list[Job]]:
    fleet = [
        runner(
            i + 1,
            labels=tuple(sorted(labels)),
            slots=slots,
            gpu=gpus(*sizes, unhealthy=tuple(unhealthy)),
            cpus=cpus,
            memory=mem * GIB if mem else None,
        )
        for i, (labels, slots, sizes, unhealthy, cpus, mem) in enumerate(fleet_spec)
    ]
    jobs = []
    for i, (labels, g, gm, c, m, repo, prio) in enumerate(mix_spec):
        resources = {}
        if g:
            resources["gpus"] = g
            if gm:
                resources["gpu_memory"] = gm * GIB
        if c:
            resources["cpus"] = c
        if m:
            resources["memory"] = m * GIB
        jobs.append(job(i + 1, labels=tuple(sorted(labels)), repo=repo, priority=prio, **resources))
    return fleet, jobs


def check_no_overbooking(fleet: list[Runner], active: list[Job]) -> None:
    for r in fleet:
        mine = [j for j in active if j.runner_id == r.id]
        assert len(mine) <= r.slots
        held = [g for j in mine for g in j.gpu_ids or []]
        assert len(held) == len(set(held)), "a GPU given to two jobs"
        healthy = {str(g["id"]): g for g in (r.gpus or {}).get("gpus", []) if g["healthy"]}
        assert set(held) <= set(healthy), "an unhealthy or unknown GPU given out"
        for j in mine:
            s = shape_of(j, trusted=True)
            assert set(s.labels) <= set(r.labels)
            assert len(j.gpu_ids or []) == s.gpus
            for g in j.gpu_ids or []:
                assert healthy[g]["memory_mib"] * 2**20 >= s.gpu_memory_bytes
        if r.resources:
            assert sum(shape_of(j, trusted=True).cpus for j in mine) <= r.resources["cpus"]
            assert (
                sum(shape_of(j, trusted=True).memory_bytes for j in mine)
                <= r.resources["memory_bytes"]
            )


@settings(deadline=None, max_examples=300)
@given(fleets, mixes, st.randoms(use_true_random=False))
def test_random_fleets_never_overbook_and_place_every_placeable_job(fleet_spec, mix_spec, rnd):
    fleet, queue = build(fleet_spec, mix_spec)
    empty = rooms(fleet, [])
    placeable = {
        j.id for j in queue if any(r.fits(shape_of(j, trusted=True)) for r in empty.values())
    }
    active: list[Job] = []
    placed: set[int] = set()
    for _ in range(len(queue) + 2):
        for j, runner_id, ids in place(fleet, active, queue):
            j.runner_id, j.gpu_ids, j.state = runner_id, ids, "running"
            active.append(j)
            placed.add(j.id)
        queue = [j for j in queue if j.id not in placed]
        check_no_overbooking(fleet, active)
        # Some of what runs finishes (at random), and its room is free again.
        active = [j for j in active if rnd.random() < 0.5]
        if not any(j.id in placeable for j in queue) and not active:
            break
    if any(j.id in placeable for j in queue):
        # Whatever is left must be placeable once all that runs has finished.
        for j, _, _ in place(fleet, [], queue):
            placed.add(j.id)
    assert placeable <= placed, "a placeable job was never placed"
    assert placed <= placeable, "a job was placed where it cannot fit"


@settings(deadline=None, max_examples=200)
@given(
    st.lists(st.integers(1, 5), min_size=2, max_size=60),
    st.integers(1, 4),
)
def test_no_repository_is_starved_by_another_ones_sweep(repos_in_arrival_order, slots):
    """Jobs of one shape from several repositories, arriving in any order, onto a runner
    with a few slots: each pass (all of the last pass's jobs finished) serves the
    repositories in turn, so no repository with jobs still waiting falls more than one job
    behind any other — a 200-job sweep queued first does not keep out a later pull request's
    check."""
    fleet = [runner(1, labels=("cpu",), slots=slots)]
    queue = [
        job(i + 1, labels=("cpu",), repo=repo) for i, repo in enumerate(repos_in_arrival_order)
    ]
    served: Counter = Counter()
    last: dict[int, float] = {}
    clock = 0.0
    while queue:
        keyed = [(j, shape_of(j, trusted=True)) for j in queue]
        ranks: Counter = Counter()
        candidates = []
        for j, s in keyed:
            candidates.append(Candidate(j, s, s.key(), ranks[j.repository_id]))
            ranks[j.repository_id] += 1
        room = rooms(fleet, [])
        planned = plan_assignments(
            candidates,
            {s.key(): list(room.values()) for _, s in keyed},
            active_by_repository={},
            last_served=last,
            limits={},
            groups={},
        )
        assert len(planned) == min(slots, len(queue))
        for a in planned:
            clock += 1
            served[a.job.repository_id] += 1
            last[a.job.repository_id] = clock
        taken = {a.job.id for a in planned}
        queue = [j for j in queue if j.id not in taken]
        # Nobody got more than one job ahead of a repository that still has jobs waiting.
        for starved in {j.repository_id for j in queue}:
            assert max(served.values()) <= served[starved] + 1, served


def test_priority_goes_first_and_a_repository_limit_holds_back():
    fleet = [runner(1, labels=("cpu",), slots=3)]
    queue = [job(1, labels=("cpu",), repo=1), job(2, labels=("cpu",), repo=1),
             job(3, labels=("cpu",), repo=2, priority=1), job(4, labels=("cpu",), repo=1)]  # fmt: skip
    room = rooms(fleet, [])
    candidates = [
        Candidate(j, shape_of(j, trusted=True), "k", rank)
        for rank, j in enumerate(q for q in queue)
    ]
    planned = plan_assignments(
        candidates,
        {"k": list(room.values())},
        active_by_repository={1: 1},  # repository 1 has one job running already
        last_served={},
        limits={1: 2},
        groups={},
    )
    assert [a.job.id for a in planned] == [3, 1]  # priority first; then repo 1 is at its limit


def test_a_big_gpu_job_that_waits_keeps_small_ones_off_its_machine():
    """An 8-GPU job waits for a machine with 4 of 8 GPUs held: 1-GPU jobs queued behind it
    go elsewhere, not onto its machine (else they would keep it from ever finding 8), while
    a job without GPUs may still use a slot there, leaving one."""
    fleet = [runner(1, gpu=gpus(*[80] * 8), slots=4), runner(2, gpu=gpus(80), slots=1)]
    busy = job(100, gpus=4)
    busy.runner_id, busy.gpu_ids, busy.state = 1, ["0", "1", "2", "3"], "running"
    room = rooms(fleet, held_by([busy]))
    queue = [job(1, gpus=8), job(2, gpus=1), job(3, gpus=1), job(4, labels=("gpu",))]
    keyed = [(j, shape_of(j, trusted=True)) for j in queue]
    planned = plan_assignments(
        [Candidate(j, s, s.key(), 0) for j, s in keyed],
        {s.key(): [r for r in room.values() if r.fits(s)] for _, s in keyed},
        active_by_repository={},
        last_served={},
        limits={},
        groups={},
        possible={keyed[0][1].key(): list(room.values())},
    )
    assert [(a.job.id, a.runner.id) for a in planned] == [(2, 2), (4, 1)]
    assert room[1].slots == 2  # one slot left for the 8-GPU job, and its GPUs untouched
    assert len(room[1].gpus) == 4
