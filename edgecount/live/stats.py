"""Latency percentiles in constant memory, however long the run."""
from __future__ import annotations

import numpy as np

LOW_S, HIGH_S = 1e-5, 1e3  # range of the bins; latencies outside it go to the end bins
GROWTH = 1.01  # each bin is 1 % wider than the previous one


class LatencyHistogram:
    """Counts latencies in log-spaced bins; percentiles to within 1 %."""

    def __init__(self):
        self.bins = int(np.ceil(np.log(HIGH_S / LOW_S) / np.log(GROWTH)))
        self.counts = np.zeros(self.bins, np.int64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add(self, seconds: np.ndarray) -> None:
        x = np.clip(np.asarray(seconds, float), LOW_S, HIGH_S)
        idx = np.minimum((np.log(x / LOW_S) / np.log(GROWTH)).astype(int), self.bins - 1)
        np.add.at(self.counts, idx, 1)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile in seconds (bin centre), None if empty."""
        if not self.total:
            return None
        i = int(np.searchsorted(np.cumsum(self.counts), q / 100 * self.total))
        return LOW_S * GROWTH ** (min(i, self.bins - 1) + 0.5)
