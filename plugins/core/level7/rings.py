"""Torch pieces the level-7 checks share: full attention, layouts, and the wrong rings.

Every misconception is a module-level function with the learner's signature, so a
forked rank inherits it.  The simulated and the real ring are each written once,
with switches for the mistakes (:func:`sim_ring`, :func:`real_ring`); the named
misconceptions are thin wrappers.  torch is imported inside functions: importing
this module costs nothing until a level-7 check runs.
"""

from __future__ import annotations

from typing import Any, Callable

# ---------------------------------------------------------------------------
# Truth and layouts
# ---------------------------------------------------------------------------


def full_attention(q: Any, k: Any, v: Any, causal: bool = False) -> Any:
    """softmax(q·kᵀ/√d)·v over the whole sequence, computed in float64, returned in q's dtype."""
    import torch

    s = (q.double() @ k.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    if causal:
        n_q, n_k = s.shape[-2:]
        s = s.masked_fill(~torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q), float("-inf"))
    return (torch.softmax(s, dim=-1) @ v.double()).to(q.dtype)


def positions(rank: int, world_size: int, n_local: int, layout: str = "contiguous") -> Any:
    import torch

    if layout == "contiguous":
        return torch.arange(rank * n_local, (rank + 1) * n_local)
    if layout != "zigzag" or n_local % 2:
        raise ValueError(f"layout {layout!r} with {n_local} tokens per shard")
    c, last = n_local // 2, 2 * world_size - 1 - rank
    return torch.cat([torch.arange(rank * c, (rank + 1) * c), torch.arange(last * c, (last + 1) * c)])


def shard(x: Any, world_size: int, layout: str) -> list:
    """The whole sequence ``x [..., N, d]`` cut as ``layout`` says, one piece per rank."""
    n = x.shape[-2] // world_size
    return [x.index_select(-2, positions(r, world_size, n, layout)) for r in range(world_size)]


def zigzag(x: Any, world_size: int, dim: int) -> list:
    import torch

    chunks = x.split(x.shape[dim] // (2 * world_size), dim=dim)
    return [torch.cat([chunks[r], chunks[2 * world_size - 1 - r]], dim=dim) for r in range(world_size)]


def schedule_table(world_size: int) -> str:
    """The rotation schedule as a plain-text table (no colour, fixed width)."""
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table()
    table.add_column("step", justify="right")
    for r in range(world_size):
        table.add_column(f"rank {r}", justify="center")
    for t in range(world_size):
        table.add_row(str(t), *(str((r - t) % world_size) for r in range(world_size)))
    out = io.StringIO()
    Console(file=out, width=100, color_system=None, no_color=True).print(table)
    return out.getvalue().rstrip()


# ---------------------------------------------------------------------------
# Blocks and merges (right and wrong)
# ---------------------------------------------------------------------------


def block(q: Any, k: Any, v: Any, mask: Any = None) -> tuple:
    import torch

    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return torch.exp(s - safe[..., None]) @ v, lse


def merge(o_a: Any, lse_a: Any, o_b: Any, lse_b: Any) -> tuple:
    import torch

    lse = torch.logaddexp(lse_a, lse_b)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return torch.exp(lse_a - safe)[..., None] * o_a + torch.exp(lse_b - safe)[..., None] * o_b, lse


def merge_average(o_a: Any, lse_a: Any, o_b: Any, lse_b: Any) -> tuple:
    import torch

    return (o_a + o_b) / 2, torch.logaddexp(lse_a, lse_b)


def merge_unshifted(o_a: Any, lse_a: Any, o_b: Any, lse_b: Any) -> tuple:
    import torch

    w_a, w_b = torch.exp(lse_a)[..., None], torch.exp(lse_b)[..., None]
    return (w_a * o_a + w_b * o_b) / (w_a + w_b), torch.log(torch.exp(lse_a) + torch.exp(lse_b))


def _mask(q_rank: int, kv_rank: int, world_size: int, n: int, layout: str, local: bool) -> Any:
    import torch

    if local:  # positions inside the shard, as if every block were the diagonal one
        return torch.ones(n, n, dtype=torch.bool).tril()
    q_pos, k_pos = positions(q_rank, world_size, n, layout), positions(kv_rank, world_size, n, layout)
    return k_pos[None, :] <= q_pos[:, None]


# ---------------------------------------------------------------------------
# The simulated ring
# ---------------------------------------------------------------------------


def sim_ring(q_shards: list, k_shards: list, v_shards: list, causal: bool = False,
             layout: str = "contiguous", *, rotate_v: bool = True, combine: Callable = merge,
             local: bool = False, hops: int | None = None) -> list:
    world_size = len(q_shards)
    hops = world_size - 1 if hops is None else hops
    out = []
    for r in range(world_size):
        acc = None
        for step in range(min(hops + 1, world_size)):
            src = (r - step) % world_size
            k, v = k_shards[src], (v_shards[src] if rotate_v else v_shards[r])
            mask = None
            if causal:
                mask = _mask(r, src, world_size, q_shards[r].shape[-2], layout, local)
                if not mask.any():
                    continue
            o, lse = block(q_shards[r], k, v, mask)
            acc = (o, lse) if acc is None else combine(*acc, o, lse)
        out.append(acc[0])
    return out


def sim_v_stays_home(q_shards, k_shards, v_shards, causal=False, layout="contiguous"):
    return sim_ring(q_shards, k_shards, v_shards, causal, layout, rotate_v=False)


def sim_average(q_shards, k_shards, v_shards, causal=False, layout="contiguous"):
    return sim_ring(q_shards, k_shards, v_shards, causal, layout, combine=merge_average)


def sim_local_positions(q_shards, k_shards, v_shards, causal=False, layout="contiguous"):
    return sim_ring(q_shards, k_shards, v_shards, causal, layout, local=True)


def sim_one_hop_short(q_shards, k_shards, v_shards, causal=False, layout="contiguous"):
    return sim_ring(q_shards, k_shards, v_shards, causal, layout, hops=len(q_shards) - 2)


def sim_unshifted_merge(q_shards, k_shards, v_shards, causal=False, layout="contiguous"):
    return sim_ring(q_shards, k_shards, v_shards, causal, layout, combine=merge_unshifted)


def schedule_backwards(world_size):
    return [[(r + t) % world_size for r in range(world_size)] for t in range(world_size)]


# ---------------------------------------------------------------------------
# The real ring (inside a process group)
# ---------------------------------------------------------------------------


def real_ring(q: Any, k: Any, v: Any, causal: bool = False, group: Any = None,
              layout: str = "contiguous", *, rotate_v: bool = True, combine: Callable = merge,
              local: bool = False, zigzag_aware: bool = True, use_group: bool = True,
              comm: str = "batch", rotations: int | None = None) -> Any:
    """The reference ring with switches; ``comm`` is batch | send_first | blocking_parity."""
    import torch
    import torch.distributed as dist

    group = group if use_group else None
    world_size, rank = dist.get_world_size(group), dist.get_rank(group)
    glob = (lambda r: r) if group is None else (lambda r: dist.get_global_rank(group, r))
    send_to, recv_from = glob((rank + 1) % world_size), glob((rank - 1) % world_size)
    layout = layout if zigzag_aware else "contiguous"
    rotations = world_size - 1 if rotations is None else rotations
    home_v = v
    k_cur, v_cur = k.contiguous(), v.contiguous()
    acc = None
    for step in range(max(world_size, rotations + 1)):
        moving = step < rotations
        if moving and comm == "batch":
            k_next, v_next = torch.empty_like(k_cur), torch.empty_like(v_cur)
            ops = [dist.P2POp(dist.isend, k_cur, send_to, group),
                   dist.P2POp(dist.irecv, k_next, recv_from, group)]
            if rotate_v:
                ops += [dist.P2POp(dist.isend, v_cur, send_to, group),
                        dist.P2POp(dist.irecv, v_next, recv_from, group)]
            requests = dist.batch_isend_irecv(ops)
        if step < world_size:
            src = (rank - step) % world_size
            mask = _mask(rank, src, world_size, q.shape[-2], layout, local) if causal else None
            if mask is None or mask.any():
                o, lse = block(q, k_cur, v_cur if rotate_v else home_v, mask)
                acc = (o, lse) if acc is None else combine(*acc, o, lse)
        if moving:
            if comm == "batch":
                for request in requests:
                    request.wait()
            else:
                k_next, v_next = torch.empty_like(k_cur), torch.empty_like(v_cur)
                first_send = comm == "send_first" or rank % 2 == 0
                for mine, theirs in ((k_cur, k_next), (v_cur, v_next)):
                    if first_send:
                        dist.send(mine, send_to, group)
                        dist.recv(theirs, recv_from, group)
                    else:
                        dist.recv(theirs, recv_from, group)
                        dist.send(mine, send_to, group)
            k_cur, v_cur = k_next, (v_next if rotate_v else v_cur)
    return acc[0]


def ring_v_stays_home(q, k, v, causal=False, group=None, layout="contiguous"):
    return real_ring(q, k, v, causal, group, layout, rotate_v=False)


def ring_average(q, k, v, causal=False, group=None, layout="contiguous"):
    return real_ring(q, k, v, causal, group, layout, combine=merge_average)


def ring_local_positions(q, k, v, causal=False, group=None, layout="contiguous"):
    return real_ring(q, k, v, causal, group, layout, local=True)


def ring_zigzag_as_contiguous(q, k, v, causal=False, group=None, layout="contiguous"):
    return real_ring(q, k, v, causal, group, layout, zigzag_aware=False)


def ring_ignores_group(q, k, v, causal=False, group=None, layout="contiguous"):
    return real_ring(q, k, v, causal, group, layout, use_group=False)


def ring_send_then_recv(q, k, v, causal=False, group=None, layout="contiguous"):
    return real_ring(q, k, v, causal, group, layout, comm="send_first")


def ring_blocking(q, k, v, causal=False, group=None, layout="contiguous"):
    return real_ring(q, k, v, causal, group, layout, comm="blocking_parity")


def ring_extra_rotation(q, k, v, causal=False, group=None, layout="contiguous"):
    import torch.distributed as dist

    return real_ring(q, k, v, causal, group, layout, rotations=dist.get_world_size(group))


def ring_all_gather(q, k, v, causal=False, group=None, layout="contiguous"):
    import torch
    import torch.distributed as dist

    world_size, rank = dist.get_world_size(group), dist.get_rank(group)
    ks = [torch.empty_like(k) for _ in range(world_size)]
    vs = [torch.empty_like(v) for _ in range(world_size)]
    dist.all_gather(ks, k.contiguous(), group=group)
    dist.all_gather(vs, v.contiguous(), group=group)
    acc = None
    for src in range(world_size):
        mask = _mask(rank, src, world_size, q.shape[-2], layout, False) if causal else None
        if mask is None or mask.any():
            o, lse = block(q, ks[src], vs[src], mask)
            acc = (o, lse) if acc is None else merge(*acc, o, lse)
    return acc[0]
