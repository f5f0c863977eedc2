"""Interop in one place: the checkpoint format and conversions to and from PyTorch."""
