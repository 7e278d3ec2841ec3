"""The Python API: ``Counter().count(path)`` counts the repetitions in a video file."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgecount.counting import CountingConfig, CountResult, StreamCounter
from edgecount.errors import EdgecountError
from edgecount.runtime.model import RepetitionModel
from edgecount.video import VideoInfo, open_video, read_frames, to_model_frame

MIN_FRAMES = 8  # fewer frames cannot show two repetitions of the shortest period
ENCODE_BATCH = 32


@dataclass
class VideoCount:
    """A count with the facts needed to report it."""

    result: CountResult
    video: VideoInfo
    model: str
    seconds: float

    @property
    def count(self) -> float:
        return self.result.count

    def to_dict(self) -> dict:
        """JSON-ready summary (per-frame lists included)."""
        r = self.result
        return {
            "count": round(r.count, 3),
            "frames": r.frames,
            "fps": self.video.fps,
            "stride": r.stride,
            "period_frames": [None if np.isnan(p) else round(float(p), 3) for p in r.period_frames],
            "periodicity": [round(float(p), 4) for p in r.periodicity],
            "model": self.model,
            "seconds": round(self.seconds, 3),
            "video": str(self.video.path),
        }


class Counter:
    """Counts repetitions with a model directory (the shipped default if none)."""

    def __init__(self, model: RepetitionModel | Path | str | None = None,
                 config: CountingConfig | None = None):
        self.model = model if isinstance(model, RepetitionModel) else RepetitionModel(model)
        self.config = config or CountingConfig()

    def count(self, path: Path | str, progress: bool = False) -> VideoCount:
        """Count the repetitions in the video at ``path``, streaming its frames."""
        start = time.perf_counter()
        cap, info = open_video(path)
        stream = StreamCounter(self.model.window, self.model.periods(), self.model.num_frames, self.config)
        bar = tqdm(total=info.frames or None, unit="frame", disable=not progress, leave=False,
                   desc=Path(path).name, delay=2)
        batch: list[np.ndarray] = []
        try:
            for frame in read_frames(cap):
                batch.append(to_model_frame(frame, self.model.frame_size))
                if len(batch) == ENCODE_BATCH:
                    stream.add(self.model.encode(np.stack(batch)))
                    bar.update(len(batch))
                    batch.clear()
            if batch:
                stream.add(self.model.encode(np.stack(batch)))
                bar.update(len(batch))
        finally:
            cap.release()
            bar.close()
        if stream.frames < MIN_FRAMES:
            raise EdgecountError(f"{path}: {stream.frames} frame(s) decoded, too short to count "
                                 f"(at least {MIN_FRAMES} needed)")
        result = stream.finish()
        return VideoCount(result, info, self.model.name, time.perf_counter() - start)
