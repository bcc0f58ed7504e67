"""Reference · waste: memory reserved but never written, as a fraction of memory reserved."""

PREDICTIONS = {
    "blocks_for_1000_tokens": 63,
    "worst_waste_per_sequence": 15,
    "reserved_waste_example": 1 - 1900 / 8192,
    "paged_waste_example": 36 / 1936,
}


def reserved_waste(seq_lens, max_len: int) -> float:
    lens = [int(n) for n in seq_lens]
    if any(n > max_len or n < 0 for n in lens):
        raise ValueError(f"every length must lie in 0 … max_len = {max_len}, got {lens}")
    reserved = len(lens) * max_len
    return 1.0 - sum(lens) / reserved if reserved else 0.0


def paged_waste(seq_lens, block_size: int) -> float:
    lens = [int(n) for n in seq_lens]
    reserved = sum(-(-n // block_size) for n in lens) * block_size  # whole blocks only
    return 1.0 - sum(lens) / reserved if reserved else 0.0
