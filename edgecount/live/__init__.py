"""Live counting: a camera, file or stream through the frame and embedding rings.

    from edgecount.live import LiveCounter
    summary = LiveCounter(model_dir).run("video.mp4")  # or 0 for the first camera
"""
from edgecount.live.capture import Reconnect
from edgecount.live.engine import LiveUpdate
from edgecount.live.pipeline import LiveConfig, LiveCounter, LiveSummary
from edgecount.live.source import FrameSource, IterableSource, open_source

__all__ = ["FrameSource", "IterableSource", "LiveConfig", "LiveCounter", "LiveSummary", "LiveUpdate",
           "Reconnect", "open_source"]
