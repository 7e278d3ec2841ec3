"""Tests of the C++ frame ring buffer edgecount._core.RingBuffer."""
import gc
import signal
import sys
import threading
import time
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from edgecount._core import RingBuffer


def frame(value, shape=(4, 5, 3), dtype=np.uint8):
    return np.full(shape, value, dtype)


def address(a):
    return a.__array_interface__["data"][0]


def filled(capacity, n, shape=(4, 5, 3), dtype="uint8"):
    rb = RingBuffer(capacity, shape, dtype)
    for i in range(n):
        rb.push(frame(i, shape, dtype))
    return rb


# --- zero copy ---------------------------------------------------------------


def test_window_is_a_view_of_the_slots():
    rb = filled(8, 5)
    w = rb.window(3)
    assert w.base is rb
    assert np.shares_memory(w, rb)
    assert address(w) == rb.slot_address(2)
    for j in range(3):
        assert address(w[j]) == rb.slot_address(2 + j)
    assert w[:, 0, 0, 0].tolist() == [2, 3, 4]
    assert not w.flags.writeable  # consumers cannot scribble on the producer's frames
    assert w.flags.c_contiguous


def test_writes_through_the_buffer_show_in_views():
    rb = filled(4, 1)
    old = rb.window_at(0, 1)
    slot = rb.claim()  # frame 1
    assert slot.base is rb and slot.flags.writeable
    assert address(slot) == rb.slot_address(1)
    slot[...] = 42
    assert rb.commit() == 1
    view = rb.window(1)
    assert address(view) == address(slot)
    slot[0, 0, 0] = 43  # the producer's slot and the consumer's view are the same memory
    assert view[0, 0, 0, 0] == 43
    # A view is valid until the producer laps it: frame 0's slot is rewritten
    # when frame capacity + 1 = 5 is written.
    for i in range(2, 6):
        rb.push(frame(100 + i))
    assert not rb.is_valid(0)
    assert old[0, 0, 0, 0] == 105


def test_raw_storage_is_exposed_through_the_buffer_protocol():
    rb = filled(3, 2, shape=(2,), dtype="float32")
    raw = np.asarray(rb)
    assert raw.shape == (4, 2) and raw.dtype == np.float32  # capacity + 1 slots
    assert not raw.flags.writeable
    assert address(raw) == rb.slot_address(0)
    assert rb.nbytes == raw.nbytes == 4 * 2 * 4
    assert raw[:2, 0].tolist() == [0.0, 1.0]


def test_views_keep_the_storage_alive():
    rb = filled(4, 3)
    view = rb.window(2)
    del rb
    gc.collect()
    assert view[:, 0, 0, 0].tolist() == [1, 2]
    assert view.base.written == 3


# --- one copy ----------------------------------------------------------------


def test_wrapped_window_is_one_copy():
    rb = filled(4, 7)  # 5 slots: frames 3..6 sit in slots 3, 4, 0, 1
    w = rb.window(4)
    assert not np.shares_memory(w, rb)
    assert w.base is None and w.flags.owndata and w.flags.c_contiguous and w.flags.writeable
    assert w[:, 0, 0, 0].tolist() == [3, 4, 5, 6]
    assert (w == np.arange(3, 7, dtype=np.uint8)[:, None, None, None]).all()


def test_strided_window_is_one_copy():
    rb = filled(10, 12)
    w = rb.window(3, stride=4)
    assert not np.shares_memory(w, rb)
    assert w.base is None and w.flags.owndata and w.flags.c_contiguous
    assert w[:, 0, 0, 0].tolist() == [3, 7, 11]
    assert rb.window_at(9, 3, stride=2)[:, 0, 0, 0].tolist() == [5, 7, 9]


def test_single_frame_window_is_always_a_view():
    rb = filled(4, 7)
    assert np.shares_memory(rb.window(1, stride=3), rb)
    assert rb.window(1, stride=3)[0, 0, 0, 0] == 6


# --- producer / consumer semantics --------------------------------------------


def test_counters_and_dropped():
    rb = RingBuffer(3, (2,), "float32")
    assert (rb.written, rb.latest_index, rb.size, rb.dropped, rb.consumed_index) == (0, -1, 0, 0, -1)
    for i in range(3):
        assert rb.push(np.full(2, i, np.float32)) == i
    assert (rb.written, rb.latest_index, rb.size, rb.dropped) == (3, 2, 3, 0)
    rb.consume(0)
    rb.push(np.zeros(2, np.float32))  # evicts frame 0: consumed, not dropped
    rb.push(np.zeros(2, np.float32))  # evicts frame 1: dropped
    assert (rb.written, rb.size, rb.dropped) == (5, 3, 1)
    rb.consume()  # up to latest_index
    assert rb.consumed_index == 4
    rb.consume(1)  # consume() never goes back
    assert rb.consumed_index == 4
    for _ in range(3):
        rb.push(np.zeros(2, np.float32))
    assert rb.dropped == 1


def test_dropped_when_nothing_is_consumed():
    rb = filled(16, 1000, shape=(3,), dtype="float32")
    assert rb.dropped == 1000 - 16


def test_push_accepts_non_contiguous_frames_and_embeddings():
    rb = RingBuffer(4, (4, 5, 3), "uint8")
    bgr = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    rb.push(bgr[..., ::-1])
    assert (rb.window(1)[0] == bgr[..., ::-1]).all()
    emb = RingBuffer(8, (512,), "float32")
    x = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    emb.push(x)
    assert (emb.window(1)[0] == x).all()


def test_claim_is_idempotent_until_commit():
    rb = RingBuffer(2, (3,), "uint8")
    a = rb.claim()
    b = rb.claim()
    assert address(a) == address(b) == rb.slot_address(0)
    a[:] = 5
    assert rb.written == 0
    assert rb.commit() == 0
    assert address(rb.claim()) == rb.slot_address(1)


def test_is_valid():
    rb = filled(4, 6)  # retains frames 2..5
    assert [rb.is_valid(i) for i in range(-1, 8)] == [False, False, False, True, True, True, True, False, False]


# --- waiting -------------------------------------------------------------------


def test_wait_for_times_out_and_returns_committed():
    rb = filled(4, 2)
    assert rb.wait_for(1, 0.0)
    t0 = time.perf_counter()
    assert not rb.wait_for(2, 0.1)
    assert 0.09 <= time.perf_counter() - t0 < 10.0


def test_wait_for_releases_the_gil_and_is_woken_by_the_producer():
    rb = RingBuffer(4, (3,), "uint8")
    spins = 0

    def producer():
        nonlocal spins
        deadline = time.perf_counter() + 0.2
        while time.perf_counter() < deadline:  # runs only if wait_for let go of the GIL
            spins += 1
        rb.push(np.zeros(3, np.uint8))

    t = threading.Thread(target=producer)
    t0 = time.perf_counter()
    t.start()
    assert rb.wait_for(0, 10.0)
    assert time.perf_counter() - t0 < 5.0
    t.join()
    assert spins > 100


def test_close_wakes_waiters_and_stops_the_producer():
    rb = filled(4, 1)
    result = []
    t = threading.Thread(target=lambda: result.append(rb.wait_for(5, None)))
    t.start()
    time.sleep(0.1)
    rb.close()
    t.join(5.0)
    assert result == [False]
    assert rb.closed and rb.wait_for(0, None) and not rb.wait_for(1, None)
    for call in (lambda: rb.push(frame(0)), rb.claim):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    assert rb.window(1)[0, 0, 0, 0] == 0  # frames stay readable


INTERRUPT_SCRIPT = """
import signal, threading, time
from edgecount._core import RingBuffer

class Interrupted(Exception):
    pass

def handler(signum, frame):
    raise Interrupted

signal.signal(signal.SIGUSR1, handler)
threading.Timer(0.1, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1)).start()
t0 = time.perf_counter()
try:
    RingBuffer(2, (1,)).wait_for(0, None)
except Interrupted:
    print(f"interrupted after {time.perf_counter() - t0:.2f} s")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_wait_for_is_interruptible():
    """A signal handler's exception ends a wait with no timeout.

    Run in a fresh interpreter: in the full suite's process, with torch, ONNX
    Runtime and OpenVINO loaded by earlier tests, delivering the signal crashed
    the process (not yet understood; the ring buffer tests alone pass).
    """
    import subprocess

    out = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.startswith("interrupted after")
    assert float(out.split()[2]) < 5.0


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RingBuffer(0, (2,)), "capacity"),
        (lambda: RingBuffer(-3, (2,)), "capacity"),
        (lambda: RingBuffer(4, (2, 0)), "shape"),
        (lambda: RingBuffer(4, (2,), "float64"), "dtype"),
        (lambda: RingBuffer(4, (2,), "int16"), "dtype"),
        (lambda: RingBuffer(4, (2,), "no such type"), "dtype"),
        (lambda: RingBuffer(2**63 - 1, (1,)), "capacity"),
        (lambda: RingBuffer(1 << 40, (1 << 30,)), "too large"),
        (lambda: filled(4, 1).push(np.zeros((4, 5, 3), np.float32)), "dtype"),
        (lambda: filled(4, 1).push(np.zeros((5, 4, 3), np.uint8)), "shape"),
        (lambda: filled(4, 1).push(np.zeros((4, 5), np.uint8)), "shape"),
        (lambda: filled(4, 4).window(5), "capacity"),
        (lambda: filled(4, 4).window(3, stride=2), "capacity"),
        (lambda: filled(4, 4).window(0), "k >= 1"),
        (lambda: filled(4, 4).window(2, stride=0), "stride >= 1"),
        (lambda: filled(4, 4).consume(4), "not written"),
        (lambda: filled(4, 4).wait_for(-1, 0.0), "index"),
        (lambda: filled(4, 4).wait_for(9, -1.0), "timeout"),
        (lambda: filled(4, 4).wait_for(9, float("nan")), "timeout"),
        (lambda: filled(4, 4).slot_address(-1), "index"),
    ],
)
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "call",
    [
        lambda rb: RingBuffer(4, (4, 5, 3)).window(1),  # empty
        lambda rb: rb.window(4),  # only 3 written
        lambda rb: rb.window_at(3, 1),  # not written yet
        lambda rb: rb.window_at(-1, 1),
        lambda rb: rb.window_at(2, 2, stride=3),  # starts before frame 0
    ],
)
def test_frames_not_in_the_buffer_raise_index_error(call):
    with pytest.raises(IndexError, match="not in the buffer"):
        call(filled(4, 3))


def test_evicted_frames_raise_index_error():
    rb = filled(4, 10)
    with pytest.raises(IndexError, match="holds frames 6..9"):
        rb.window_at(5, 1)
    assert rb.window_at(6, 1)[0, 0, 0, 0] == 6


def test_commit_without_claim_raises():
    with pytest.raises(RuntimeError, match="claim"):
        RingBuffer(2, (1,)).commit()


# --- model-based property test -----------------------------------------------------

SHAPE = (2, 3)


class RingBufferModel(RuleBasedStateMachine):
    """Random push / claim / window / consume sequences against a deque."""

    @initialize(capacity=st.integers(1, 6), dtype=st.sampled_from(["uint8", "float32"]))
    def setup(self, capacity, dtype):
        self.rb = RingBuffer(capacity, SHAPE, dtype)
        self.capacity, self.dtype = capacity, np.dtype(dtype)
        self.frames = deque(maxlen=capacity)  # retained frames, oldest first
        self.written, self.dropped, self.consumed = 0, 0, -1

    def _make(self, value):
        return np.arange(6, dtype=self.dtype).reshape(SHAPE) + self.dtype.type(value)

    def _append(self, f):
        if len(self.frames) == self.capacity and self.written - self.capacity > self.consumed:
            self.dropped += 1
        self.frames.append(f)
        self.written += 1

    @rule(value=st.integers(0, 200))
    def push(self, value):
        f = self._make(value)
        assert self.rb.push(f) == self.written
        self._append(f)

    @rule(value=st.integers(0, 200), junk=st.booleans())
    def claim_commit(self, value, junk):
        slot = self.rb.claim()
        assert slot.shape == SHAPE and address(slot) == self.rb.slot_address(self.written)
        if junk:  # a half-written slot must stay invisible to the consumer
            slot[...] = 255
            if self.written:
                self.check_window(min(self.capacity, self.written), 1)
        f = self._make(value)
        slot[...] = f
        assert self.rb.commit() == self.written
        self._append(f)

    def expected(self, end, k, stride):
        """The model's frames end-(k-1)*stride .. end, or the exception to expect."""
        span = (k - 1) * stride + 1
        if span > self.capacity:
            return ValueError
        oldest = self.written - len(self.frames)
        start = end - span + 1
        if start < oldest or end >= self.written:
            return IndexError
        return np.stack([self.frames[i - oldest] for i in range(start, end + 1, stride)])

    def check_window(self, k, stride, end=None):
        want = self.expected(self.written - 1 if end is None else end, k, stride)
        call = (lambda: self.rb.window(k, stride)) if end is None else (lambda: self.rb.window_at(end, k, stride))
        if isinstance(want, type):
            with pytest.raises(want):
                call()
            return
        got = call()
        assert got.dtype == self.dtype and got.shape == (k, *SHAPE)
        np.testing.assert_array_equal(got, want)
        start = (self.written - 1 if end is None else end) - (k - 1) * stride
        adjacent = k == 1 or (stride == 1 and start % (self.capacity + 1) + k <= self.capacity + 1)
        assert np.shares_memory(got, self.rb) == adjacent
        if adjacent:
            assert address(got) == self.rb.slot_address(start)

    @rule(k=st.integers(1, 7), stride=st.integers(1, 3))
    def window(self, k, stride):
        self.check_window(k, stride)

    @rule(data=st.data(), k=st.integers(1, 4), stride=st.integers(1, 3))
    def window_at(self, data, k, stride):
        end = data.draw(st.integers(-2, self.written + 1), label="end")
        self.check_window(k, stride, end)

    @rule(data=st.data())
    def consume(self, data):
        up_to = data.draw(st.integers(-1, self.written), label="up_to")
        if up_to >= self.written:
            with pytest.raises(ValueError):
                self.rb.consume(up_to)
            return
        self.rb.consume(up_to)
        self.consumed = max(self.consumed, up_to)

    @precondition(lambda self: self.written > 0)
    @rule()
    def consume_all(self):
        self.rb.consume()
        self.consumed = self.written - 1

    @invariant()
    def counters(self):
        rb = self.rb
        assert rb.written == self.written
        assert rb.latest_index == self.written - 1
        assert rb.size == len(self.frames)
        assert rb.dropped == self.dropped
        assert rb.consumed_index == self.consumed
        oldest = self.written - len(self.frames)
        assert rb.is_valid(oldest) == (self.written > 0)
        assert not rb.is_valid(oldest - 1)


TestRingBufferModel = RingBufferModel.TestCase
TestRingBufferModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@settings(max_examples=50, deadline=None)
@given(
    capacity=st.integers(1, 40),
    n=st.integers(0, 120),
    k=st.integers(1, 40),
    stride=st.integers(1, 5),
)
def test_window_matches_slicing_of_the_whole_stream(capacity, n, k, stride):
    stream = np.arange(n, dtype=np.float32)[:, None] * np.ones(3, np.float32)
    rb = RingBuffer(capacity, (3,), "float32")
    for f in stream:
        rb.push(f)
    span = (k - 1) * stride + 1
    if span > capacity:
        with pytest.raises(ValueError):
            rb.window(k, stride)
    elif span > n:
        with pytest.raises(IndexError):
            rb.window(k, stride)
    else:
        np.testing.assert_array_equal(rb.window(k, stride), stream[n - span :: stride])


# --- threads ---------------------------------------------------------------------------


def run_threads(*targets, timeout=120.0):
    """Runs targets in threads, switching the GIL between them often; re-raises
    the first exception of any of them."""
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # re-raised in the main thread
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
            assert not t.is_alive(), "thread did not finish in time"
    finally:
        sys.setswitchinterval(old_interval)
    if errors:
        raise errors[0]


def test_threaded_stress_small_frames():
    """200k pushes against a consumer reading windows, checking every one it trusts."""
    n, capacity, k = 200_000, 16, 5
    rb = RingBuffer(capacity, (4,), "float32")
    stats = {"windows": 0, "laps": 0, "last_consumed": -1}

    def producer():
        f = np.empty(4, np.float32)
        for i in range(n):
            f[:] = i
            assert rb.push(f) == i
        rb.close()

    def consistent(w, start, stride):
        want = start + stride * np.arange(len(w), dtype=np.float32)
        return bool((w == want[:, None]).all())

    def consumer():
        seen_written = seen_dropped = 0
        next_end = (k - 1) * 3
        while rb.latest_index >= next_end or rb.wait_for(next_end, 10.0):
            end = rb.latest_index
            next_end = end + 1
            stride = 1 + stats["windows"] % 3
            start = end - (k - 1) * stride
            try:
                w = rb.window_at(end, k, stride)  # a view, or a copy checked before return
            except IndexError:  # evicted since latest_index was read
                stats["laps"] += 1
                continue
            ok = consistent(w, start, stride)  # reads a view in place, as inference would
            if rb.is_valid(start):  # else the producer lapped the view while it was read
                assert ok, (start, stride, w[:, 0])
            else:
                stats["laps"] += 1
            latest = rb.window(k)
            if latest.base is None:  # copies are consistent when returned
                assert consistent(latest, int(latest[0, 0]), 1), latest[:, 0]
            rb.consume(end)
            stats["last_consumed"] = end
            written, dropped = rb.written, rb.dropped
            assert written >= seen_written and dropped >= seen_dropped
            assert dropped <= max(0, written - capacity)
            seen_written, seen_dropped = written, dropped
            stats["windows"] += 1

    t0 = time.perf_counter()
    run_threads(producer, consumer)
    elapsed = time.perf_counter() - t0
    assert rb.written == n and rb.latest_index == n - 1
    evicted = n - capacity
    # Every evicted frame above the last consume() mark was certainly dropped.
    assert evicted - (stats["last_consumed"] + 1) <= rb.dropped <= evicted
    assert stats["windows"] > 10
    print(f"stress: {n} frames in {elapsed:.2f} s, {stats['windows']} windows, "
          f"{stats['laps']} laps, dropped {rb.dropped}")


def test_threaded_large_frames_without_laps():
    """1 MiB frames: push and wrapped-window copies run with the GIL released,
    so producer and consumer really run at the same time. The producer keeps
    within `capacity` frames of the consumer's consume() mark, so no frame is
    ever lapped: every window must be exact, nothing is dropped, and under
    ThreadSanitizer no two threads may touch the same slot unordered."""
    n, capacity, k = 600, 6, 3
    shape = (512, 512)  # float32: 1 MiB per frame
    rb = RingBuffer(capacity, shape, "float32")
    stats = {"copies": 0, "views": 0}

    def producer():
        f = np.empty(shape, np.float32)
        for i in range(n):
            while rb.consumed_index < i - capacity:  # committing i evicts i - capacity
                time.sleep(1e-4)
            f[...] = i
            rb.push(f)
        rb.close()

    def consumer():
        for end in range(k - 1, n):
            assert rb.wait_for(end, 30.0)
            w = rb.window_at(end, k)
            stats["copies" if w.base is None else "views"] += 1
            want = np.arange(end - k + 1, end + 1, dtype=np.float32)
            assert (w == want[:, None, None]).all(), end
            rb.consume(end - k + 1)  # the next window starts one frame later

    run_threads(producer, consumer)
    assert rb.written == n and rb.dropped == 0
    assert stats["copies"] > 0 and stats["views"] > 0


def test_threaded_large_frames_with_laps():
    """1 MiB frames again, now with a producer that laps the consumer: copies
    caught being overwritten are retried or refused, views are checked with
    is_valid() after they were read."""
    n, capacity, k = 1000, 6, 3
    shape = (512, 512)  # float32: 1 MiB per frame
    rb = RingBuffer(capacity, shape, "float32")
    stats = {"copies": 0, "views": 0, "laps": 0}

    def producer():
        f = np.zeros(shape, np.float32)
        for i in range(n):
            f[0, 0] = f[-1, -1] = i  # first and last bytes tell a torn frame
            rb.push(f)
        rb.close()

    def consumer():
        next_end = k - 1
        while rb.wait_for(next_end, 10.0):
            end = rb.latest_index
            start = end - k + 1
            try:
                w = rb.window_at(end, k)  # a copy is checked before it is returned
            except IndexError:  # evicted, or lapped while copied
                stats["laps"] += 1
                continue
            finally:
                next_end = end + 1
            time.sleep(2e-4)  # "inference": the producer runs ahead meanwhile
            heads, tails = w[:, 0, 0].copy(), w[:, -1, -1].copy()
            if w.base is None or rb.is_valid(start):
                stats["copies" if w.base is None else "views"] += 1
                assert heads.tolist() == tails.tolist() == list(range(start, end + 1))
            else:
                stats["laps"] += 1
            rb.consume(end)

    t0 = time.perf_counter()
    run_threads(producer, consumer)
    elapsed = time.perf_counter() - t0
    assert rb.written == n
    assert stats["copies"] + stats["views"] > 0
    print(f"large frames: {n} frames in {elapsed:.2f} s, {stats}")
