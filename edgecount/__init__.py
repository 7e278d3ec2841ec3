"""edgecount: class-agnostic repetition counting in video, in real time on a CPU."""
__version__ = "0.1.0"
