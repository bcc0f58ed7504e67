"""Reference · ring_attention_sim: P devices in one process, K/V blocks passed round a ring."""

import torch

PREDICTIONS = {
    "rotations_per_pass": 3,
    "holder_step2_rank0": 2,
    "causal_blocks_skipped": 6,
}


def rotation_schedule(world_size: int) -> list[list[int]]:
    # Every rank passes its block to rank r + 1, so at step t rank r holds rank (r − t)'s.
    return [[(r - t) % world_size for r in range(world_size)] for t in range(world_size)]


def print_schedule(world_size: int) -> None:
    """Print ``rotation_schedule(world_size)`` as a table: one row per step, one column per rank."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"K/V shard held by each rank (P = {world_size})")
    table.add_column("step", justify="right")
    for r in range(world_size):
        table.add_column(f"rank {r}", justify="center")
    for t, row in enumerate(rotation_schedule(world_size)):
        table.add_row(str(t), *(str(s) for s in row))
    Console().print(table)


def global_positions(rank: int, world_size: int, n_local: int,
                     layout: str = "contiguous") -> torch.Tensor:
    """Where the ``n_local`` tokens of ``rank``'s shard sit in the whole sequence."""
    if layout == "contiguous":
        return torch.arange(rank * n_local, (rank + 1) * n_local)
    if layout == "zigzag":
        if n_local % 2:
            raise ValueError(f"a zigzag shard holds two equal chunks; {n_local} tokens is odd")
        c = n_local // 2
        last = 2 * world_size - 1 - rank
        return torch.cat([torch.arange(rank * c, (rank + 1) * c),      # chunk r
                          torch.arange(last * c, (last + 1) * c)])    # chunk 2P − 1 − r
    raise ValueError(f"layout must be 'contiguous' or 'zigzag', not {layout!r}")


def block_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q over one K/V block: the normalised partial output and its log-sum-exp."""
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5          # [..., n_q, n_k]
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)                             # [..., n_q]; -inf: sees nothing
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return torch.exp(s - safe[..., None]) @ v, lse


def merge_partials(o_a: torch.Tensor, lse_a: torch.Tensor, o_b: torch.Tensor,
                   lse_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine partial outputs over disjoint key sets: weights e^(lse_x − lse), no overflow."""
    lse = torch.logaddexp(lse_a, lse_b)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    w_a = torch.exp(lse_a - safe)[..., None]
    w_b = torch.exp(lse_b - safe)[..., None]
    return w_a * o_a + w_b * o_b, lse


def causal_mask(q_rank: int, kv_rank: int, world_size: int, n_local: int, layout: str) -> torch.Tensor:
    """True where a query of ``q_rank``'s shard may see a key of ``kv_rank``'s (global positions)."""
    q_pos = global_positions(q_rank, world_size, n_local, layout)
    k_pos = global_positions(kv_rank, world_size, n_local, layout)
    return k_pos[None, :] <= q_pos[:, None]


def ring_attention_sim(q_shards: list[torch.Tensor], k_shards: list[torch.Tensor],
                       v_shards: list[torch.Tensor], causal: bool = False,
                       layout: str = "contiguous") -> list[torch.Tensor]:
    world_size = len(q_shards)
    schedule = rotation_schedule(world_size)
    held = list(zip(k_shards, v_shards))  # held[r]: the K/V block in rank r's hands right now
    partial: list = [None] * world_size
    for step in range(world_size):
        for r in range(world_size):
            k, v = held[r]
            mask = None
            if causal:
                mask = causal_mask(r, schedule[step][r], world_size, q_shards[r].shape[-2], layout)
                if not mask.any():
                    continue  # the whole block lies in this rank's future: skip it
            o, lse = block_attention(q_shards[r], k, v, mask)
            partial[r] = (o, lse) if partial[r] is None else merge_partials(*partial[r], o, lse)
        if step < world_size - 1:
            held = [held[(r - 1) % world_size] for r in range(world_size)]  # pass to rank r + 1
    return [o for o, _ in partial]
