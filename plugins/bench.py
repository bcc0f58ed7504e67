"""Bench plugin (placeholder until written)."""
