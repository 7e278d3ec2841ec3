"""A picture of a count: period, periodicity and the running count over time."""
from __future__ import annotations

from pathlib import Path

from edgecount.counter import VideoCount


def plot_count(vc: VideoCount, path: Path) -> None:
    """Write a PNG with three stacked panels over time in seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    r = vc.result
    t = np.arange(r.frames) / vc.video.fps
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
    axes[0].plot(t, r.period_frames / vc.video.fps, color="tab:blue")
    axes[0].set_ylabel("period (s)")
    axes[1].plot(t, r.periodicity, color="tab:orange")
    axes[1].axhline(0.5, color="gray", lw=0.8, ls="--")
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("periodicity")
    axes[2].plot(t, r.running_count, color="tab:green")
    axes[2].set_ylabel("count")
    axes[2].set_xlabel("time (s)")
    fig.suptitle(f"{vc.video.path.name}: {r.count:.1f} repetitions (stride {r.stride}, {vc.model})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
