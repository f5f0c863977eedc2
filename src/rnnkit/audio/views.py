"""Several featurisations of one recording, for test-time augmentation: the same samples
through the front end with its mel filterbank warped by each of a few VTLP factors
(`rnnkit.audio.augment.vtlp_warp`), and a model's outputs averaged over them.

    warp_grid(3, 0.1)        -> [0.9, 1.0, 1.1]
    warped_views(x, front, [0.9, 1.0, 1.1])   -> three (T, front.size) arrays of equal T

The warp moves filter edges, not frames: every view has the frames of the plain one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import InputError


def warp_grid(k: int, spread: float, where: str = "warps") -> np.ndarray:
    """``k`` warp factors evenly spaced in ``[1 - spread, 1 + spread]``, 1 among them: ``k``
    must be odd (1 alone for ``k = 1``)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise InputError(f"{where}: expected an odd number of warps >= 1 (1 and pairs), got {k!r}")
    if k > 1 and not 0 < spread < 0.5:
        raise InputError(f"{where}: {k} warps need a spread in (0, 0.5), got {spread!r}")
    return np.linspace(1.0 - spread, 1.0 + spread, k) if k > 1 else np.ones(1)


def warped_views(samples: np.ndarray, front: Any, factors: Iterable[float]) -> list[np.ndarray]:
    """``front.features(samples, warp=a)`` for each factor ``a`` (``front``: a
    `rnnkit.audio.FrontEnd`, or anything with ``features(samples, warp=)``)."""
    return [front.features(samples, warp=float(a)) for a in factors]
