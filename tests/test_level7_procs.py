"""The level-7 process harness: real gloo ranks on localhost, and every way they go wrong.

A rank that hangs, deadlocks, raises, crashes or prints must come back as a named
outcome within its deadline, and no worker may outlive the call.
"""

from __future__ import annotations

import os
import signal
import time
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from attnkata.runner import FAILED, NOT_STARTED, PASSED, run_check  # noqa: E402
from attnkata.target import load_module  # noqa: E402
from attnkata_plugins.core.level7 import rings as T  # noqa: E402
from attnkata_plugins.core.level7.comm_probe import CommProbe  # noqa: E402
from attnkata_plugins.core.level7.procs import RankError, fork_available, run_ranks  # noqa: E402
from attnkata_plugins.core.level7.ring_attention import RING_ATTENTION  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (fork_available() and dist.is_available() and dist.is_gloo_available()),
    reason="needs fork and torch.distributed with gloo")

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


def all_dead(pid_dir: Path) -> bool:
    pids = [int(p.read_text()) for p in pid_dir.glob("*.pid")]
    assert pids, "the job never ran"
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def note_pid(pid_dir: Path, rank: int) -> None:
    (pid_dir / f"{rank}.pid").write_text(str(os.getpid()))


# -- jobs (module level: the forked ranks inherit them) ------------------------

def echo(rank, world_size, case, state):
    state["seen"] = state.get("seen", 0) + 1
    return {"rank": rank, "world": world_size, "case": case, "seen": state["seen"],
            "t": torch.full((2,), float(rank))}


def ring_step(rank, world_size, case, state):
    x, y = torch.full((3,), float(rank)), torch.empty(3)
    with CommProbe() as probe:
        reqs = dist.batch_isend_irecv([dist.P2POp(dist.isend, x, (rank + 1) % world_size),
                                       dist.P2POp(dist.irecv, y, (rank - 1) % world_size)])
        _ = x @ x  # compute while the transfer is in flight
        for req in reqs:
            req.wait()
    restored = "CommProbe" not in getattr(dist.ProcessGroup.send, "__qualname__", "")
    return y, probe.summary(), restored


def recv_first(rank, world_size, case, state):
    note_pid(case, rank)
    y = torch.empty(3)
    with CommProbe():
        dist.recv(y, (rank - 1) % world_size)
        dist.send(y, (rank + 1) % world_size)
    return y


def spin(rank, world_size, case, state):
    note_pid(case, rank)
    while True:
        pass


def raise_on_one(rank, world_size, case, state):
    note_pid(case, rank)
    if rank == 1:
        print("about to fail on rank 1")
        raise ValueError("bad shard")
    y = torch.empty(1)
    dist.recv(y, 1)  # waits for rank 1, which never sends
    return y


def not_started(rank, world_size, case, state):
    raise NotImplementedError("kata demo: not yet")


def crash(rank, world_size, case, state):
    note_pid(case, rank)
    if rank == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)


def gather_all(rank, world_size, case, state):
    with CommProbe():
        out = [torch.empty(1) for _ in range(world_size)]
        dist.all_gather(out, torch.ones(1))
    return out


def unpicklable(rank, world_size, case, state):
    return lambda: rank


# -- the harness ---------------------------------------------------------------

def test_results_come_back_per_case_and_rank_with_private_state():
    results = run_ranks(3, echo, ["a", "b"])
    assert [[r["case"] for r in per_rank] for per_rank in results] == [["a"] * 3, ["b"] * 3]
    assert [r["rank"] for r in results[1]] == [0, 1, 2]
    assert all(r["world"] == 3 and r["seen"] == i + 1 for i, per_rank in enumerate(results) for r in per_rank)
    assert torch.equal(results[0][2]["t"], torch.full((2,), 2.0))


@pytest.mark.parametrize("world_size", [2, 4])
def test_probe_counts_point_to_point_traffic_and_overlap(world_size):
    for rank, (y, probe, restored) in enumerate(run_ranks(world_size, ring_step, [None])[0]):
        assert float(y[0]) == (rank - 1) % world_size
        assert probe == {"sends": 1, "sent_elements": 3, "recvs": 1, "recv_waits": 1,
                         "overlapped": 1, "compute": 1}
        assert restored, "CommProbe must undo its patches on exit"


def test_a_deadlocked_ring_is_named_and_killed_within_its_deadline(tmp_path):
    start = time.monotonic()
    with pytest.raises(RankError) as info:
        run_ranks(4, recv_first, [tmp_path], stuck_after=0.5, progress_timeout=20)
    assert info.value.kind == "deadlock"
    assert info.value.ranks == (0, 1, 2, 3)
    assert "never finished" in info.value.message
    assert time.monotonic() - start < 15, "a deadlock must not wait for the progress timeout"
    assert all_dead(tmp_path)


def test_an_endless_loop_times_out_and_every_rank_is_killed(tmp_path):
    with pytest.raises(RankError) as info:
        run_ranks(2, spin, [tmp_path], progress_timeout=1.0)
    assert info.value.kind == "timeout"
    assert "running: [0, 1]" in info.value.message
    assert all_dead(tmp_path)


def test_an_exception_names_its_rank_and_the_learners_frames(tmp_path):
    with pytest.raises(RankError) as info:
        run_ranks(2, raise_on_one, [tmp_path], learner_root=Path(__file__).parent)
    err = info.value
    assert err.kind == "raised" and err.ranks[0] == 1
    assert "rank 1 of 2 raised" in err.message and "ValueError: bad shard" in err.message
    assert "in raise_on_one" in err.message and "core/level7/procs.py" not in err.message
    assert "about to fail on rank 1" in err.logs[1]
    assert all_dead(tmp_path)


def test_not_implemented_reads_as_not_started():
    with pytest.raises(RankError) as info:
        run_ranks(2, not_started, [None])
    assert info.value.kind == "not_started" and "kata demo" in info.value.message


def test_a_rank_that_dies_is_reported_as_a_crash(tmp_path):
    with pytest.raises(RankError) as info:
        run_ranks(2, crash, [tmp_path])
    assert info.value.kind == "crashed" and "SIGKILL" in info.value.message
    assert all_dead(tmp_path)


def test_collectives_are_refused_under_the_probe():
    with pytest.raises(RankError) as info:
        run_ranks(2, gather_all, [None])
    assert info.value.kind == "refused" and "allgather" in info.value.message


def test_a_result_that_cannot_be_pickled_is_reported():
    with pytest.raises(RankError) as info:
        run_ranks(2, unpicklable, [None])
    assert info.value.kind == "raised" and "cannot be sent back" in info.value.message


# -- through the kata's checks ----------------------------------------------------

def reference():
    return load_module(SOLUTIONS / "level7" / "ring_attention.py", SOLUTIONS)


def check(check_id):
    return next(c for c in RING_ATTENTION.checks if c.id == check_id)


def test_the_reference_ring_passes_a_kata_check():
    ref = reference()
    result = run_check(RING_ATTENTION, check("ring_causal_zigzag"), ref, ref, target_root=SOLUTIONS)
    assert result.outcome == PASSED, result.message


def test_a_deadlocking_learner_fails_with_the_deadlock_named():
    target = types.SimpleNamespace(ring_attention=T.ring_send_then_recv)
    start = time.monotonic()
    result = run_check(RING_ATTENTION, check("ring_matches_full"), target, reference(), target_root=None)
    assert result.outcome == FAILED
    assert "deadlock_send_first" in result.misconception_ids
    assert "deadlock: ranks [0, 1] never finished" in result.message
    assert time.monotonic() - start < 30


def test_a_stub_is_not_started():
    def stub(q, k, v, causal=False, group=None, layout="contiguous"):
        raise NotImplementedError("kata ring_attention: todo")

    result = run_check(RING_ATTENTION, check("ring_honours_group"),
                       types.SimpleNamespace(ring_attention=stub), reference(), target_root=None)
    assert result.outcome == NOT_STARTED
