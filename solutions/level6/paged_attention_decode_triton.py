"""Reference · paged_attention_decode_triton: the reference kernel of kernels/paged_decode.py."""

from attnkata_kernels.paged_decode import paged_decode

PREDICTIONS = {
    "programs_in_grid": 32,
    "bytes_read_per_step": 16 * 2**20,
    "flops_per_byte_mha": 1.0,
}


def paged_attention_decode_triton(q, k_pages, v_pages, block_tables, seq_lens):
    return paged_decode(q, k_pages, v_pages, block_tables, seq_lens)
