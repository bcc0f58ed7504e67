"""Reference · zigzag_shards: 2P chunks, rank r takes chunk r and its mirror 2P − 1 − r."""

import torch

PREDICTIONS = {
    "contiguous_tiles_p4": (3, 7, 11, 15),
    "zigzag_tiles_p4": (9, 9, 9, 9),
    "contiguous_imbalance": 7,
    "partner_of_chunk_1": 6,
}


def zigzag_shards(x: torch.Tensor, world_size: int, dim: int) -> list[torch.Tensor]:
    n = x.shape[dim]
    if n % (2 * world_size):
        raise ValueError(f"zigzag_shards: length {n} along dim {dim} is not divisible by "
                         f"2 · world_size = {2 * world_size}")
    chunks = x.split(n // (2 * world_size), dim=dim)
    return [torch.cat([chunks[r], chunks[2 * world_size - 1 - r]], dim=dim) for r in range(world_size)]
