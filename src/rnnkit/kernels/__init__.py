"""Fused numeric kernels (numba): arrays in, arrays out."""
