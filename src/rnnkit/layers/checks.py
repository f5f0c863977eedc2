"""Validation at the public boundary of the layers: one-line errors naming what was wrong."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, ShapeError

DTYPES = {"float32": np.float32, "float64": np.float64}


def show(value: object, limit: int = 60) -> str:
    """``repr(value)`` on one line and at most ``limit`` characters, for messages."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve_dtype(name: str, dtype: Any) -> np.dtype:
    if isinstance(dtype, str):
        key = dtype
    elif isinstance(dtype, (type, np.dtype)):
        try:
            key = np.dtype(dtype).name
        except TypeError:
            key = ""
    else:  # numbers, arrays, booleans: not a dtype, even where numpy would read one
        key = ""
    if key not in DTYPES:
        raise InputError(f"{name}: dtype must be 'float32' or 'float64', got {show(dtype)}")
    return np.dtype(DTYPES[key])


def flag(name: str, arg: str, value: object) -> bool:
    """A yes/no option: True or False (or numpy's), never a string such as 'False'."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise InputError(f"{name}: {arg} must be True or False, got {show(value)}")


def probability(name: str, arg: str, value: object) -> float:
    """A number in [0, 1), such as a dropout rate."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise InputError(f"{name}: {arg} must be a number in [0, 1), got {show(value)}")
    if not 0.0 <= float(value) < 1.0:
        raise InputError(f"{name}: {arg} must lie in [0, 1), got {show(value)}")
    return float(value)


def seed_value(name: str, seed: object) -> int | None:
    """A random seed: None or a non-negative integer."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"{name}: seed must be None or a non-negative integer, got {show(seed)}")
    return int(seed)


def as_float_array(name: str, what: str, value: object, dtype: np.dtype) -> np.ndarray:
    """Convert to a float array of ``dtype``; say what was given when that is impossible."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):  # ragged lists and the like
        raise InputError(
            f"{name}: {what} must be a rectangular array, got a ragged {type(value).__name__}"
        ) from None
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{name}: {what} must be numeric, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=dtype, order="C")  # keeps 0-d input 0-d


def batch_size(name: str, batch: object) -> int:
    """The ``batch`` of ``initial_state(batch)``: a non-negative integer."""
    if isinstance(batch, (bool, np.bool_)) or not isinstance(batch, (int, np.integer)) or batch < 0:
        raise InputError(f"{name}: batch must be a non-negative integer, got {show(batch)}")
    return int(batch)


def check_finite(name: str, what: str, arr: np.ndarray) -> None:
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(
            f"{name}: {what} contains NaN or infinity (first at index {bad}); "
            "expected finite values"
        )


def positive_int(name: str, arg: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name}: {arg} must be a positive integer, got {show(value)}")
    return int(value)


def check_shape(name: str, what: str, arr: np.ndarray, expected: tuple, labels: tuple) -> None:
    """``expected`` holds ints or None (any size); ``labels`` names each axis for the message."""
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape, strict=False)
    )
    if not ok:
        want = ", ".join(
            lab if e is None else str(e) for e, lab in zip(expected, labels, strict=True)
        )
        raise ShapeError(f"{name}: expected {what} of shape ({want}), got {tuple(arr.shape)}")


def check_lengths(name: str, lengths: object, batch: int, steps: int) -> np.ndarray:
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ShapeError(f"{name}: expected lengths of shape ({batch},), got {tuple(arr.shape)}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(arr == np.round(arr)):
            raise InputError(f"{name}: lengths must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > steps):
        raise InputError(
            f"{name}: lengths must lie in [1, {steps}] (the number of steps), "
            f"got values from {arr.min()} to {arr.max()}"
        )
    return arr


def like_input(name: str, what: str, value: object) -> np.ndarray:
    """A float array for a module without parameters: float64 stays float64, else float32."""
    dtype = np.float64 if getattr(value, "dtype", None) == np.float64 else np.float32
    return as_float_array(name, what, value, np.dtype(dtype))


def time_mask(lengths: np.ndarray | None, T: int, B: int) -> np.ndarray:
    """``(T, B)`` booleans, True at the steps ``t < lengths[b]`` (every step without lengths)."""
    if lengths is None:
        return np.ones((T, B), dtype=bool)
    return np.arange(T)[:, None] < lengths[None, :]
