"""The live window: the video with the running count, the period and a periodicity bar."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from edgecount.annotate import draw_overlay
from edgecount.live.engine import LiveUpdate

MAX_WIDTH = 960  # larger frames are shown downscaled
FRAME_MS = 15  # the window polls for new frames and keys this often
QUIT_KEYS = {ord("q"), 27}  # q, Esc

DEFAULT_FPS = 30.0  # to show periods in seconds when the source does not say its rate


def open_window() -> Window | None:
    """The live window, or None where none can be shown: no display to draw on
    (DISPLAY unset) or an OpenCV without GUI support (opencv-python-headless)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None
    try:
        return Window()
    except cv2.error:
        return None


class Window:
    """An OpenCV window on the caller's thread; q, Esc or closing it ends the run."""

    def __init__(self, title: str = "edgecount live"):
        self.title = title
        self.shown: np.ndarray | None = None
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def show(self, frame: np.ndarray | None, update: LiveUpdate | None, fps: float | None) -> bool:
        if frame is not None and frame is not self.shown:
            self.shown = frame
            h, w = frame.shape[:2]
            scale = min(1.0, MAX_WIDTH / w)
            image = cv2.resize(frame, (int(w * scale), int(h * scale))) if scale < 1 else frame.copy()
            if update is not None:
                e = update.estimate
                period_s = None if np.isnan(e.period) else e.period / (fps or DEFAULT_FPS)
                draw_overlay(image, e.count, period_s, e.periodicity)
            cv2.imshow(self.title, image)
        key = cv2.waitKey(FRAME_MS) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        return key not in QUIT_KEYS and not closed

    def close(self) -> None:
        cv2.destroyWindow(self.title)
