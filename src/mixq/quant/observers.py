"""Calibration observers: see float32 activation batches one at a time, produce qparams.

Every observer has the same interface::

    obs = make_observer("mse")            # or MinMaxObserver(), PercentileObserver(99.99), ...
    for batch in batches:
        obs.update(batch)                  # any shape; NaN/Inf -> ValueError
    lo, hi = obs.range()                   # the clipping range it chose
    scale, zero_point = obs.qparams()      # choose_qparams(lo, hi, obs.dtype, obs.symmetric)

``dtype`` defaults to "uint8" (asymmetric); "int8" gives symmetric qparams (zero point 0).
Observation is one pass with bounded memory: the min/max observer keeps two numbers, the
percentile and MSE observers a fixed-size histogram (2048 bins by default) plus the exact
min/max. When a batch falls outside the histogram's range, the range grows by a power of two
and old bins are merged whole into new ones (bin edges stay aligned), so no count is ever
split or interpolated: the histogram is exactly what a histogram of that final bin grid over
all the data would be.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from .primitives import choose_qparams, qrange

__all__ = ["Observer", "MinMaxObserver", "PercentileObserver", "MSEObserver", "make_observer", "OBSERVERS"]


class Observer:
    """Base class: tracks count and exact min/max; subclasses choose the range."""

    name = "observer"

    def __init__(self, dtype="uint8", symmetric: bool | None = None):
        qmin, _ = qrange(dtype)  # validates dtype
        self.dtype = dtype
        self.symmetric = (qmin < 0) if symmetric is None else bool(symmetric)
        self.reset()

    def reset(self) -> None:
        """Forget everything observed."""
        self._count = 0
        self._batches = 0
        self._min = math.inf
        self._max = -math.inf

    @property
    def count(self) -> int:
        """Number of values observed so far (elements, over all batches)."""
        return self._count

    @property
    def batches(self) -> int:
        """Number of non-empty batches observed so far."""
        return self._batches

    @property
    def min(self) -> float:
        self._require_data()
        return self._min

    @property
    def max(self) -> float:
        self._require_data()
        return self._max

    def update(self, x) -> "Observer":
        """Observe one batch (any shape, converted to float32). Empty batches are ignored.
        Raises ValueError if it contains NaN or Inf (the observer is then left unchanged)."""
        a = np.asarray(x)
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
            raise TypeError(f"{type(self).__name__}.update needs real numbers, got dtype {a.dtype}")
        with np.errstate(over="ignore"):
            a = a.astype(np.float32, copy=False).reshape(-1)
        if a.size == 0:
            return self
        mn, mx = float(a.min()), float(a.max())  # NaN propagates through min/max
        if not (math.isfinite(mn) and math.isfinite(mx)):
            raise ValueError(f"{type(self).__name__}.update: the batch contains NaN or Inf "
                             "(or values beyond the float32 range)")
        self._observe(a, mn, mx)
        self._min = min(self._min, mn)
        self._max = max(self._max, mx)
        self._count += int(a.size)
        self._batches += 1
        return self

    def _observe(self, a: np.ndarray, mn: float, mx: float) -> None:
        pass

    def _require_data(self) -> None:
        if self._count == 0:
            raise ValueError(f"{type(self).__name__} has observed no data: call update() with at least one "
                             "non-empty batch before range() or qparams()")

    def range(self) -> tuple[float, float]:
        """The clipping range (lo, hi) this observer chose for the data seen so far."""
        self._require_data()
        return self._range()

    def _range(self) -> tuple[float, float]:
        raise NotImplementedError

    def qparams(self):
        """(scale np.float32, zero_point int) for ``range()`` (see choose_qparams)."""
        lo, hi = self.range()
        return choose_qparams(lo, hi, self.dtype, self.symmetric)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dtype={self.dtype!r}, symmetric={self.symmetric}, count={self._count})"


class MinMaxObserver(Observer):
    """The exact minimum and maximum of everything observed."""

    name = "minmax"

    def _range(self) -> tuple[float, float]:
        return self._min, self._max


class _Histogram:
    """Fixed-size histogram whose range grows by powers of two with bins merged whole.

    Bin i covers [origin + i*width, origin + (i+1)*width); values on the top edge fall in the
    last bin. Edges are float64.
    """

    def __init__(self, bins: int):
        self.bins = bins
        self.counts = np.zeros(bins, np.int64)
        self.origin = 0.0
        self.width = 0.0

    @property
    def top(self) -> float:
        return self.origin + self.bins * self.width

    def add(self, a: np.ndarray, mn: float, mx: float) -> None:
        if self.width == 0.0:
            if mx > mn:
                self.origin, self.width = mn, (mx - mn) / self.bins
            else:  # a constant first batch: a small range around it (it grows as needed)
                h = max(abs(mn) * 2.0 ** -10, 2.0 ** -40)
                self.origin, self.width = mn - h, 2.0 * h / self.bins
            if not self.width > 0.0:  # (mx - mn) / bins underflowed
                self.origin, self.width = mn, 2.0 ** -40 / self.bins
        if mn < self.origin or mx > self.top:
            self._grow(mn, mx)
        idx = np.floor((a.astype(np.float64) - self.origin) * (1.0 / self.width))
        idx = np.clip(idx, 0, self.bins - 1).astype(np.intp)
        self.counts += np.bincount(idx, minlength=self.bins)

    def _grow(self, mn: float, mx: float) -> None:
        b, w, o = self.bins, self.width, self.origin
        lo, hi = min(mn, o), max(mx, self.top)
        k = max(1, math.ceil(math.log2((hi - lo) / (b * w))))
        j_min = math.ceil((o - lo) / w)  # the new origin is o - j*w: j old bins further left
        while True:  # smallest power-of-two factor f with an aligned placement covering [lo, hi]
            f = 2.0 ** k
            j_max = min(math.floor((o + f * b * w - hi) / w), (f - 1) * b)
            if j_min <= j_max:
                break
            k += 1
        # the spare room goes where the data grew: right, left, or both (centred)
        grew_left, grew_right = mn < o, mx > self.top
        j = j_max if grew_left and not grew_right else j_min if grew_right and not grew_left else \
            (j_min + j_max) // 2
        new_origin, new_width = o - j * w, f * w
        centers = o + (np.arange(b) + 0.5) * w  # old bins lie wholly inside one new bin
        new_idx = np.clip(np.floor((centers - new_origin) / new_width), 0, b - 1).astype(np.intp)
        counts = np.zeros(b, np.int64)
        np.add.at(counts, new_idx, self.counts)
        self.counts, self.origin, self.width = counts, new_origin, new_width

    def support(self, mn: float, mx: float):
        """Non-empty bins as (u, v, count) with each bin's interval clipped to [mn, mx]."""
        nz = np.nonzero(self.counts)[0]
        u = np.maximum(self.origin + nz * self.width, mn)
        v = np.minimum(self.origin + (nz + 1) * self.width, mx)
        return u, np.maximum(u, v), self.counts[nz].astype(np.float64)


def _check_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, Integral) or bins < 16:
        raise ValueError(f"bins must be an integer >= 16, got {bins!r}")
    return int(bins)


class _HistogramObserver(Observer):
    def __init__(self, dtype="uint8", symmetric: bool | None = None, *, bins: int = 2048):
        self._bins = _check_bins(bins)
        super().__init__(dtype, symmetric)

    def reset(self) -> None:
        super().reset()
        self._hist = _Histogram(self._bins)
        self._cached = None

    def _observe(self, a, mn, mx) -> None:
        self._hist.add(a, mn, mx)
        self._cached = None

    def quantile(self, q: float) -> float:
        """Estimated q-quantile (0 <= q <= 1) of everything observed, with np.percentile's
        'linear' convention (rank q*(n-1)); values are spread uniformly inside each bin, and
        q = 0 / q = 1 give the exact min / max."""
        self._require_data()
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must lie in [0, 1], got {q}")
        if q == 0.0:
            return self._min
        if q == 1.0:
            return self._max
        u, v, c = self._hist.support(self._min, self._max)
        cum = np.cumsum(c)
        r = q * (cum[-1] - 1.0)
        i = min(int(np.searchsorted(cum, r, side="right")), len(c) - 1)
        before = cum[i - 1] if i > 0 else 0.0
        t = min((r - before + 0.5) / c[i], 1.0)
        return float(min(max(u[i] + t * (v[i] - u[i]), self._min), self._max))


class PercentileObserver(_HistogramObserver):
    """Clips to the [100 - percentile, percentile] percentiles of the observed values
    (estimated from the histogram; percentile=100 is the exact min/max)."""

    name = "percentile"

    def __init__(self, percentile: float = 99.99, dtype="uint8", symmetric: bool | None = None, *,
                 bins: int = 2048):
        if isinstance(percentile, bool) or not isinstance(percentile, Real) or not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r}")
        self.percentile = float(percentile)
        super().__init__(dtype, symmetric, bins=bins)

    def _range(self) -> tuple[float, float]:
        if self._cached is None:
            p = self.percentile / 100.0
            self._cached = (self.quantile(1.0 - p), self.quantile(p))
        return self._cached


class MSEObserver(_HistogramObserver):
    """Chooses the clipping range that minimizes the expected quantization MSE of the observed
    distribution.

    The distribution is the histogram with values uniform inside each bin (edge bins clipped to
    the exact min/max). For a candidate range the real qparams are computed (choose_qparams:
    zero point rounding, 0 kept exact), and the expected squared error is integrated in closed
    form per bin: the rounding sawtooth inside the representable range, (x - edge)^2 outside.
    Candidates: a geometric grid of clipping ratios per side (both sides independently for
    asymmetric, one amax for symmetric), then two rounds of local refinement. The unclipped
    min/max range is always a candidate, so the chosen range never has a higher expected error.
    """

    name = "mse"

    _GRID = np.concatenate([np.geomspace(1.0, 1e-3, 28), [0.0]])
    _REFINE_POINTS = 9
    _REFINE_ROUNDS = 2
    _CHUNK = 1 << 18  # candidate x bin elements per vectorized step

    def _range(self) -> tuple[float, float]:
        if self._cached is None:
            self._cached = self._search()
        return self._cached

    # -- expected error of candidates ---------------------------------------------------------

    def _errors(self, lo_c: np.ndarray, hi_c: np.ndarray, u, v, c) -> np.ndarray:
        """Expected total squared error for each candidate range (lo_c[i], hi_c[i])."""
        qmin, qmax = qrange(self.dtype)
        out = np.empty(len(lo_c))
        step = max(1, self._CHUNK // max(len(c), 1))
        for s0 in range(0, len(lo_c), step):
            scale, zp = choose_qparams(lo_c[s0:s0 + step], hi_c[s0:s0 + step], self.dtype, self.symmetric)
            s = scale.astype(np.float64)[:, None]
            a = s * (qmin - zp.astype(np.float64)[:, None])  # lowest representable value
            b = s * (qmax - zp.astype(np.float64)[:, None])  # highest
            out[s0:s0 + step] = _expected_sq_error(u[None, :], v[None, :], c[None, :], s, a, b).sum(axis=1)
        return out

    def _search(self) -> tuple[float, float]:
        u, v, c = self._hist.support(self._min, self._max)
        lo0, hi0 = min(self._min, 0.0), max(self._max, 0.0)
        if lo0 == hi0:
            return self._min, self._max
        f32 = np.float32
        if self.symmetric:
            amax0 = max(-lo0, hi0)

            def pair(av):
                av = np.asarray(av, f32)
                return np.maximum(f32(lo0), -av), np.minimum(f32(hi0), av)

            cand = np.unique(np.asarray(amax0 * self._GRID[self._GRID > 0], f32))
            for _ in range(self._REFINE_ROUNDS + 1):
                err = self._errors(*pair(cand), u, v, c)
                i = int(np.argmin(err))
                best = cand[i]
                lo_n = cand[max(i - 1, 0)]
                hi_n = cand[min(i + 1, len(cand) - 1)]
                cand = np.unique(np.concatenate([np.linspace(lo_n, hi_n, self._REFINE_POINTS, dtype=f32), [best]]))
            lo, hi = pair(best)
            return float(lo), float(hi)

        lo_cand = np.unique(np.asarray(lo0 * self._GRID, f32))
        hi_cand = np.unique(np.asarray(hi0 * self._GRID, f32))
        best_lo, best_hi = lo_cand[0], hi_cand[-1]
        for _ in range(self._REFINE_ROUNDS + 1):
            gl, gh = np.meshgrid(lo_cand, hi_cand, indexing="ij")
            err = self._errors(gl.ravel(), gh.ravel(), u, v, c)
            err[(gl.ravel() == 0) & (gh.ravel() == 0)] = np.inf  # (0, 0) falls back to scale 1
            il, ih = np.unravel_index(int(np.argmin(err)), gl.shape)
            best_lo, best_hi = lo_cand[il], hi_cand[ih]
            lo_cand = _refine(lo_cand, il, self._REFINE_POINTS)
            hi_cand = _refine(hi_cand, ih, self._REFINE_POINTS)
        return float(best_lo), float(best_hi)


def _refine(cand: np.ndarray, i: int, points: int) -> np.ndarray:
    """Sorted candidates between the neighbours of cand[i], keeping cand[i] itself."""
    a, b = cand[max(i - 1, 0)], cand[min(i + 1, len(cand) - 1)]
    return np.unique(np.concatenate([np.linspace(a, b, points, dtype=cand.dtype), [cand[i]]]))


def _saw_integral(x, s):
    """G(x) = integral of (t - s*rint(t/s))^2 dt from -s/2 to x (the rounding-error sawtooth)."""
    k = np.floor(x / s + 0.5)
    r = x - k * s
    return k * s ** 3 / 12.0 + (r ** 3 + s ** 3 / 8.0) / 3.0


def _expected_sq_error(u, v, c, s, a, b):
    """Expected squared error of count c spread uniformly over [u, v] (a point mass if u == v)
    under round-to-nearest with step s, representable range [a, b], clamping outside it."""
    width = v - u
    # clipped below a: integral of (x - a)^2 over [u, min(v, a)]
    lo_end = np.minimum(v, a)
    below = np.where(u < lo_end, ((lo_end - a) ** 3 - (u - a) ** 3) / 3.0, 0.0)
    # clipped above b: integral of (x - b)^2 over [max(u, b), v]
    hi_start = np.maximum(u, b)
    above = np.where(hi_start < v, ((v - b) ** 3 - (hi_start - b) ** 3) / 3.0, 0.0)
    # rounding inside [a, b]
    p, q = np.maximum(u, a), np.minimum(v, b)
    inside = np.where(p < q, _saw_integral(q, s) - _saw_integral(p, s), 0.0)
    positive = width > 0
    spread = c * (below + above + inside) / np.where(positive, width, 1.0)
    if positive.all():
        return spread
    point = c * (u - s * np.clip(np.rint(u / s), a / s, b / s)) ** 2
    return np.where(positive, spread, point)


OBSERVERS = {"minmax": MinMaxObserver, "percentile": PercentileObserver, "mse": MSEObserver}


def make_observer(name: str, **kw) -> Observer:
    """A new observer by name: "minmax", "percentile" or "mse"; keyword arguments go to its
    constructor (e.g. ``make_observer("percentile", percentile=99.9, dtype="int8")``)."""
    cls = OBSERVERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown observer {name!r}; valid names: {', '.join(OBSERVERS)}")
    return cls(**kw)
