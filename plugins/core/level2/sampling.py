"""The sampling math both level-2 sampling katas judge with: a stable softmax, the top-k and
top-p masks, and the filtered distribution (with switches for the mistakes)."""

from __future__ import annotations

import numpy as np


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


def keep_top_p(p, top_p, crossing=True):
    """Mask of the most probable tokens whose mass reaches top_p (crossing token kept or not)."""
    order = np.argsort(-p, kind="stable")
    mass = np.cumsum(p[order])
    last = int(np.searchsorted(mass, top_p, side="left"))
    last = min(last if crossing else max(last - 1, 0), p.size - 1)
    keep = np.zeros(p.size, bool)
    keep[order[:last + 1]] = True
    return keep


def keep_top_k(z, top_k, ties=True):
    if top_k is None or top_k >= z.size:
        return np.ones(z.size, bool)
    if ties:
        return z >= np.sort(z)[-top_k]
    keep = np.zeros(z.size, bool)
    keep[np.argsort(-z, kind="stable")[:top_k]] = True
    return keep


def filtered_probs(z, top_k, top_p, *, ties=True, crossing=True):
    p = softmax(np.where(keep_top_k(z, top_k, ties), z, -np.inf))
    if top_p is not None:
        p = np.where(keep_top_p(p, top_p, crossing), p, 0)
        p = p / p.sum()
    return p
