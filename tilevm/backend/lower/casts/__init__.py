"""Vectorized casts of packed registers (Thread IR sequences)."""
