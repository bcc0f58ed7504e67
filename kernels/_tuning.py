"""Autotune helpers shared by the reference kernels: config tables and their keys.

A config table row names tile sizes, warps, pipeline stages and the head dims the row is
allowed at. The head-dim column exists because a tile that fits the register file at
``d = 64`` can spill at ``d = 128`` (each thread holds twice the accumulator); the compile
gate (``attnkata.compilegate``) compiles every row at every head dim it allows and fails
on any spill, so the table is the record of what was proven to fit.
"""

import os

import triton

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
"""True when Triton runs on the CPU interpreter: launchers use one small fixed config."""


def _config_id(config):
    return (tuple(sorted(config.kwargs.items())), config.num_warps, config.num_stages)


def device_arch():
    """The current CUDA device as ``major * 10 + minor`` (90 for H100), or None."""
    import torch
    if INTERPRET or not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


class ConfigTable:
    """Autotune configs with where each may run.

    :param names: the constexpr names of the tile sizes, e.g. ``("BLOCK_M", "BLOCK_N")``.
    :param rows: ``(*sizes, num_warps, num_stages, only)`` tuples; ``only`` is None (any
        head dim, any GPU) or a dict with ``head_dims`` (a tuple) and/or ``min_arch``
        (e.g. 90: the row's shared memory fits Hopper's 227 KB but not Ampere's 163 KB).
    :param interpret: the one config the CPU interpreter runs (small and quick).
    """

    def __init__(self, names, rows, interpret):
        self._only = {}
        if INTERPRET:
            rows = [(*interpret, 1, 1, None)]
        self.configs = []
        for *sizes, warps, stages, only in rows:
            config = triton.Config(dict(zip(names, sizes)), num_warps=warps, num_stages=stages)
            self.configs.append(config)
            self._only[_config_id(config)] = only or {}

    def allowed(self, config, head_dim, arch):
        """Whether ``config`` may run at ``head_dim`` on ``arch`` (None: not known)."""
        only = self._only.get(_config_id(config), {})
        if "head_dims" in only and head_dim not in only["head_dims"]:
            return False
        return arch is None or arch >= only.get("min_arch", 0)

    def select(self, head_dim, arch):
        """The configs the autotuner may try at ``head_dim`` on ``arch``."""
        return [c for c in self.configs if self.allowed(c, head_dim, arch)] or self.configs[:1]

    def prune(self, configs, named_args, **kwargs):
        """``early_config_prune`` for ``triton.autotune``: rows allowed here and now."""
        head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM"))
        arch = device_arch()
        kept = [c for c in configs if self.allowed(c, head_dim, arch)]
        return kept or configs[:1]


def bucket(n):
    """Autotune key for a length: the next power of two, so N = 3000 and 4000 share a tune."""
    return triton.next_power_of_2(max(int(n), 1))
