"""Temporal smoothing of tracked points (keypoints, box corners), one filter state per track.

:class:`OneEuroFilter` is the 1€ filter of Casiez, Roussel and Vogel (CHI 2012): a low-pass filter whose
cut-off rises with the speed, so a still person stops jittering and a fast one does not lag. For one
coordinate sampled at times ``t_i`` (period ``dt``)::

    alpha(fc) = 1 / (1 + tau / dt),  tau = 1 / (2 pi fc)
    dx_i  = (x_i - xhat_{i-1}) / dt ;  dxhat_i = alpha(d_cutoff) dx_i + (1 - alpha(d_cutoff)) dxhat_{i-1}
    fc_i  = min_cutoff + beta |dxhat_i| ;  xhat_i = alpha(fc_i) x_i + (1 - alpha(fc_i)) xhat_{i-1}

starting from ``xhat_0 = x_0``, ``dxhat_0 = 0``. Every coordinate is filtered on its own (the paper's
scalar filter). Times are seconds, so the cut-offs are in Hz and ``beta`` in 1 / pixel. :class:`EmaFilter`
is the plain exponential average ``xhat_i = alpha x_i + (1 - alpha) xhat_{i-1}``. Scores are never
smoothed: they say how sure the network was of this frame.
"""

from __future__ import annotations

import math

import numpy as np

SMOOTHERS = ("one-euro", "ema", "none")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """The 1€ filter over an array of coordinates (any shape), fed one sample per call with its time."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(
                f"one-euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, got {min_cutoff}, {d_cutoff}, {beta}"
            )
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.t: float | None = None
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        """The filtered value of sample ``x`` taken at time ``t`` (seconds, increasing)."""
        x = np.asarray(x, dtype=np.float64)
        if self.t is None or self.x is None or self.dx is None or self.x.shape != x.shape:
            self.t, self.x, self.dx = t, x.copy(), np.zeros_like(x)
            return x.copy()
        dt = t - self.t
        if dt <= 0:
            raise ValueError(f"one-euro: sample times must increase, got {t} after {self.t}")
        dx = (x - self.x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        a = _alpha(self.min_cutoff + self.beta * np.abs(self.dx), dt)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x.copy()


class EmaFilter:
    """The exponential moving average ``alpha x + (1 - alpha) previous`` (time is not used)."""

    def __init__(self, alpha: float = 0.5) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"ema alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.x: np.ndarray | None = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        """The average after sample ``x`` (``t`` is accepted for a common signature)."""
        x = np.asarray(x, dtype=np.float64)
        if self.x is None or self.x.shape != x.shape:
            self.x = x.copy()
        else:
            self.x = self.alpha * x + (1 - self.alpha) * self.x
        return self.x.copy()


class TrackSmoother:
    """One filter per track ID: ``smoother(track_id, t, points)`` -> smoothed points; ``drop(ids)`` forgets
    the state of tracks the tracker gave up, so a new person never inherits an old one's state."""

    def __init__(
        self,
        kind: str = "one-euro",
        min_cutoff: float = 1.0,
        beta: float = 0.01,
        d_cutoff: float = 1.0,
        ema_alpha: float = 0.5,
    ) -> None:
        if kind not in SMOOTHERS:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHERS)}, got {kind!r}")
        self.kind = kind
        self._make = {
            "one-euro": lambda: OneEuroFilter(min_cutoff, beta, d_cutoff),
            "ema": lambda: EmaFilter(ema_alpha),
            "none": lambda: None,
        }[kind]
        self._make()  # the parameters are checked now, not on the first track
        self.filters: dict[int, OneEuroFilter | EmaFilter] = {}

    def __call__(self, track_id: int, t: float, points: np.ndarray) -> np.ndarray:
        """``points`` of track ``track_id`` at time ``t``, smoothed (unchanged with ``kind="none"``)."""
        if self.kind == "none":
            return np.asarray(points, dtype=np.float64)
        f = self.filters.get(track_id)
        if f is None:
            f = self.filters[track_id] = self._make()
        return f(t, points)

    def drop(self, ids: list[int]) -> None:
        """Forget the filters of ``ids``."""
        for i in ids:
            self.filters.pop(i, None)
