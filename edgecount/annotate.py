"""Write a copy of a video with the running count drawn on each frame."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edgecount.counter import VideoCount
from edgecount.errors import EdgecountError
from edgecount.video import open_video, read_frames


def draw_overlay(frame: np.ndarray, count: float, period_s: float | None, periodicity: float) -> None:
    """Draw the count, the period and a periodicity bar on a BGR frame, in place."""
    h, w = frame.shape[:2]
    scale = max(h / 480, 0.5)
    cv2.rectangle(frame, (0, 0), (w, int(70 * scale)), (0, 0, 0), -1)
    cv2.putText(frame, f"count {int(count)}", (int(10 * scale), int(45 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, 1.4 * scale, (255, 255, 255), max(1, int(3 * scale)))
    text = f"period {period_s:.2f}s" if period_s else "not periodic"
    cv2.putText(frame, text, (int(w * 0.45), int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                0.7 * scale, (255, 255, 255), max(1, int(2 * scale)))
    x0, x1, y = int(w * 0.45), int(w * 0.95), int(50 * scale)
    cv2.rectangle(frame, (x0, y), (x1, y + int(10 * scale)), (80, 80, 80), -1)
    cv2.rectangle(frame, (x0, y), (x0 + int((x1 - x0) * periodicity), y + int(10 * scale)), (0, 200, 255), -1)


def annotate_video(vc: VideoCount, out: Path, progress: bool = False) -> None:
    """Re-read the counted video and write it to ``out`` (mp4) with the overlay."""
    cap, info = open_video(vc.video.path)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height))
    if not writer.isOpened():
        cap.release()
        raise EdgecountError(f"cannot write video {out}")
    r = vc.result
    try:
        for i, frame in enumerate(tqdm(read_frames(cap), total=r.frames, unit="frame",
                                       disable=not progress, leave=False, desc="annotate")):
            j = min(i, r.frames - 1)
            period = r.period_frames[j]
            draw_overlay(frame, r.running_count[j], None if np.isnan(period) else period / info.fps,
                         float(r.periodicity[j]))
            writer.write(frame)
    finally:
        cap.release()
        writer.release()
