"""Back-pressure on a ring buffer: a producer that must not drop frames waits for
the consumer instead of overwriting the oldest frame."""
from __future__ import annotations

import threading

from edgecount._core import RingBuffer

POLL_S = 0.05  # waits wake this often to notice a stop request


class Room:
    """The producer waits (``wait``) until its next commit would evict only a
    consumed frame; the consumer marks frames consumed through ``consume``."""

    def __init__(self, ring: RingBuffer):
        self.ring = ring
        self._cond = threading.Condition()

    def _free(self) -> bool:
        return self.ring.consumed_index >= self.ring.written - self.ring.capacity

    def wait(self, stop: threading.Event) -> bool:
        """True once there is room; False if ``stop`` is set first."""
        with self._cond:
            while not self._free():
                if stop.is_set():
                    return False
                self._cond.wait(POLL_S)
        return True

    def consume(self, index: int) -> None:
        """Mark frames <= ``index`` consumed and wake a waiting producer."""
        self.ring.consume(index)
        with self._cond:
            self._cond.notify()
