// RingBuffer: the frame ring buffer of the live path.
//
// One producer thread (capture) writes fixed-shape frames into a preallocated,
// contiguous block of slots; one consumer thread (inference) reads windows of
// the latest frames as numpy arrays, zero-copy whenever the frames are adjacent
// in memory. The producer never blocks: when the consumer falls behind, the
// oldest frame is overwritten.
//
// Layout: frame i (i = 0, 1, 2, ...) lives in slot i % (capacity + 1). The
// buffer retains the last `capacity` committed frames; the one extra slot is
// where the producer writes the next frame, so a frame being written never
// overwrites a retained one.
//
// Synchronisation:
//  * head_ counts committed frames. The producer fills a slot, then stores
//    head_; the consumer loads head_ (acquire) before reading, so every frame
//    below head_ is complete.
//  * Reads race with a lapping producer by design (seqlock style): before it
//    writes the slot of frame j, the producer has published head_ = j (frame
//    j - capacity - 1, the slot's previous frame, is no longer retained) and
//    issued a release fence. A reader that copied frames from `start` on
//    re-checks head_ after an acquire fence: if `start` is still retained, no
//    byte it read was being rewritten (is_valid()).
//  * wait_for() sleeps on a condition variable; the producer takes the mutex
//    only when a waiter is registered, and only to notify.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;
using namespace py::literals;

namespace {

// Copies of at least this many bytes run with the GIL released.
constexpr std::size_t kNoGilCopyBytes = std::size_t{1} << 20;
// Storage alignment (a cache line).
constexpr std::size_t kAlign = 64;
// window() retries a copy the producer overwrote at most this many times.
constexpr int kWindowAttempts = 4;
// A waiting wait_for() wakes this often so that Python can handle signals.
constexpr auto kSignalPoll = std::chrono::milliseconds(50);
// Longer timeouts than this (about 31 years) mean "no timeout".
constexpr double kMaxTimeoutS = 1e9;

struct AlignedFree {
    void operator()(std::byte *p) const { ::operator delete(p, std::align_val_t{kAlign}); }
};

std::size_t checked_mul(std::size_t a, std::size_t b) {
    if (b != 0 && a > std::numeric_limits<std::size_t>::max() / b)
        throw py::value_error("RingBuffer: requested size is too large");
    return a * b;
}

int64_t checked_capacity(int64_t capacity) {
    if (capacity < 1 || capacity == std::numeric_limits<int64_t>::max())
        throw py::value_error("RingBuffer: capacity must be >= 1, got " +
                              std::to_string(capacity));
    return capacity;
}

py::dtype checked_dtype(const py::object &dtype) {
    const auto unsupported = [&] {
        return py::value_error("RingBuffer: dtype must be uint8 or float32, got " +
                               std::string(py::repr(dtype)));
    };
    py::dtype dt;
    try {
        dt = py::dtype::from_args(dtype);
    } catch (py::error_already_set &) {  // not a dtype at all
        throw unsupported();
    }
    if (!dt.equal(py::dtype::of<uint8_t>()) && !dt.equal(py::dtype::of<float>()))
        throw unsupported();
    return dt;
}

std::string shape_str(const std::vector<py::ssize_t> &shape) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

class RingBuffer {
public:
    RingBuffer(int64_t capacity, std::vector<py::ssize_t> shape, const py::object &dtype)
        : capacity_(checked_capacity(capacity)),
          nslots_(capacity_ + 1),
          shape_(std::move(shape)),
          dtype_(checked_dtype(dtype)) {
        slot_bytes_ = static_cast<std::size_t>(dtype_.itemsize());
        for (py::ssize_t d : shape_) {
            if (d < 1)
                throw py::value_error("RingBuffer: every dimension of shape must be >= 1, got " +
                                      shape_str(shape_));
            slot_bytes_ = checked_mul(slot_bytes_, static_cast<std::size_t>(d));
        }
        nbytes_ = checked_mul(slot_bytes_, static_cast<std::size_t>(nslots_));
        data_.reset(static_cast<std::byte *>(::operator new(nbytes_, std::align_val_t{kAlign})));
        // Touch every page now so that the live path never page-faults.
        std::memset(data_.get(), 0, nbytes_);
    }

    // --- producer ---------------------------------------------------------

    py::array claim(py::handle owner) {
        return view(owner, begin_write("claim"), shape_, /*writable=*/true);
    }

    int64_t commit() {
        if (!claimed_)
            throw std::runtime_error("RingBuffer.commit(): no slot claimed; call claim() first");
        ensure_open("commit");
        return publish();
    }

    int64_t push(py::handle owner, const py::array &frame) {
        check_frame(frame);
        std::byte *dst = begin_write("push");
        if (frame.flags() & py::array::c_style) {
            const void *src = frame.data();
            std::optional<py::gil_scoped_release> nogil;
            if (slot_bytes_ >= kNoGilCopyBytes) nogil.emplace();
            // memmove: the source may be a view of this very buffer.
            std::memmove(dst, src, slot_bytes_);
        } else {
            py::module_::import("numpy").attr("copyto")(view(owner, dst, shape_, true), frame);
        }
        return publish();
    }

    void close() {
        closed_.store(true, std::memory_order_seq_cst);
        wake_waiters();
    }

    // --- consumer ---------------------------------------------------------

    py::array window(py::handle owner, int64_t k, int64_t stride) const {
        check_window(k, stride);
        for (int attempt = 1;; ++attempt) {
            const int64_t end = head_.load(std::memory_order_acquire) - 1;
            auto [frames, intact] = read(owner, end, k, stride);
            if (intact) return frames;
            if (attempt == kWindowAttempts)
                throw py::index_error("RingBuffer.window(): the producer overwrote the frames "
                                      "while they were copied, " +
                                      std::to_string(kWindowAttempts) +
                                      " times in a row; use a larger capacity");
        }
    }

    py::array window_at(py::handle owner, int64_t end, int64_t k, int64_t stride) const {
        check_window(k, stride);
        auto [frames, intact] = read(owner, end, k, stride);
        if (!intact)
            throw py::index_error("RingBuffer.window_at(): frames ending at " +
                                  std::to_string(end) +
                                  " were overwritten by the producer while they were copied");
        return frames;
    }

    void consume(std::optional<int64_t> up_to) {
        const int64_t latest = head_.load(std::memory_order_acquire) - 1;
        const int64_t index = up_to.value_or(latest);
        if (index > latest)
            throw py::value_error("RingBuffer.consume(): frame " + std::to_string(index) +
                                  " is not written yet (latest_index is " +
                                  std::to_string(latest) + ")");
        // Single consumer: no other thread stores consumed_.
        if (index > consumed_.load(std::memory_order_relaxed))
            consumed_.store(index, std::memory_order_release);
    }

    bool wait_for(int64_t index, std::optional<double> timeout_s) {
        if (index < 0)
            throw py::value_error("RingBuffer.wait_for(): index must be >= 0, got " +
                                  std::to_string(index));
        if (timeout_s && !(*timeout_s >= 0.0))  // also rejects NaN
            throw py::value_error("RingBuffer.wait_for(): timeout_s must be >= 0 or None");
        if (committed(index)) return true;

        using clock = std::chrono::steady_clock;
        std::optional<clock::time_point> deadline;
        if (timeout_s && *timeout_s < kMaxTimeoutS)
            deadline = clock::now() + std::chrono::duration_cast<clock::duration>(
                                          std::chrono::duration<double>(*timeout_s));

        bool interrupted = false;
        {
            py::gil_scoped_release nogil;
            // Register as a waiter before testing the predicate (see publish()).
            waiters_.fetch_add(1, std::memory_order_seq_cst);
            struct Unregister {
                std::atomic<int> &n;
                ~Unregister() { n.fetch_sub(1, std::memory_order_seq_cst); }
            } unregister{waiters_};

            std::unique_lock<std::mutex> lock(mu_);
            while (!committed(index) && !closed_.load(std::memory_order_seq_cst)) {
                const auto now = clock::now();
                if (deadline && now >= *deadline) break;
                const auto wake = deadline ? std::min(*deadline, now + kSignalPoll) : now + kSignalPoll;
                if (cv_.wait_until(lock, wake) == std::cv_status::timeout) {
                    // Let Python run signal handlers (Ctrl-C). Drop the mutex first:
                    // the producer may hold the GIL and want the mutex.
                    lock.unlock();
                    {
                        py::gil_scoped_acquire gil;
                        interrupted = PyErr_CheckSignals() != 0;
                    }
                    if (interrupted) break;
                    lock.lock();
                }
            }
        }
        // The handler's exception is raised only once the GIL is held again.
        if (interrupted) throw py::error_already_set();
        return committed(index);
    }

    bool is_valid(int64_t start) const {
        // Orders the caller's earlier reads of frame data before the load of head_.
        std::atomic_thread_fence(std::memory_order_acquire);
        const int64_t head = head_.load(std::memory_order_relaxed);
        return start >= 0 && start < head && start >= head - capacity_;
    }

    // --- introspection ----------------------------------------------------

    uintptr_t slot_address(int64_t index) const {
        if (index < 0)
            throw py::value_error("RingBuffer.slot_address(): index must be >= 0, got " +
                                  std::to_string(index));
        return reinterpret_cast<uintptr_t>(slot(index));
    }

    py::buffer_info buffer_info() const {
        const std::vector<py::ssize_t> shape = frames_shape(nslots_);
        return py::buffer_info(data_.get(), dtype_.itemsize(),
                               py::str(dtype_.attr("char")).cast<std::string>(),
                               static_cast<py::ssize_t>(shape.size()), shape,
                               c_strides(shape), /*readonly=*/true);
    }

    int64_t capacity() const { return capacity_; }
    py::tuple shape() const { return py::cast(shape_); }
    py::dtype dtype() const { return dtype_; }
    std::size_t nbytes() const { return nbytes_; }
    int64_t written() const { return head_.load(std::memory_order_acquire); }
    int64_t latest_index() const { return written() - 1; }
    int64_t size() const { return std::min(written(), capacity_); }
    int64_t dropped() const { return dropped_.load(std::memory_order_acquire); }
    int64_t consumed_index() const { return consumed_.load(std::memory_order_acquire); }
    bool closed() const { return closed_.load(std::memory_order_acquire); }

    std::string repr() const {
        return "RingBuffer(capacity=" + std::to_string(capacity_) + ", shape=" +
               shape_str(shape_) + ", dtype=" + std::string(py::str(dtype_)) +
               ", written=" + std::to_string(written()) +
               ", dropped=" + std::to_string(dropped()) + ")";
    }

private:
    std::byte *slot(int64_t index) const {
        return data_.get() + static_cast<std::size_t>(index % nslots_) * slot_bytes_;
    }

    bool committed(int64_t index) const {
        return head_.load(std::memory_order_seq_cst) > index;
    }

    void ensure_open(const char *what) const {
        if (closed_.load(std::memory_order_acquire))
            throw std::runtime_error(std::string("RingBuffer.") + what + "(): buffer is closed");
    }

    // Claims the slot of frame head_ for writing (again, if already claimed).
    std::byte *begin_write(const char *what) {
        ensure_open(what);
        if (!claimed_) {
            claimed_ = true;
            // head_ = j was published by the previous commit; the writes into
            // this slot must not become visible before it (see the top).
            std::atomic_thread_fence(std::memory_order_release);
        }
        return slot(head_.load(std::memory_order_relaxed));
    }

    // Publishes the claimed frame; returns its index.
    int64_t publish() {
        claimed_ = false;
        const int64_t j = head_.load(std::memory_order_relaxed);
        // Committing frame j evicts frame j - capacity: dropped if not consumed.
        const int64_t evicted = j - capacity_;
        if (evicted >= 0 && evicted > consumed_.load(std::memory_order_acquire))
            dropped_.store(dropped_.load(std::memory_order_relaxed) + 1,
                           std::memory_order_release);
        // seq_cst store, then seq_cst load of waiters_: with the waiter's
        // increment-then-check this cannot lose a wakeup.
        head_.store(j + 1, std::memory_order_seq_cst);
        if (waiters_.load(std::memory_order_seq_cst) > 0) wake_waiters();
        return j;
    }

    void wake_waiters() {
        // Taking the mutex orders the notify after a waiter's predicate check.
        { std::lock_guard<std::mutex> lock(mu_); }
        cv_.notify_all();
    }

    void check_frame(const py::array &frame) const {
        if (!frame.dtype().equal(dtype_))
            throw py::value_error("RingBuffer.push(): frame dtype must be " +
                                  std::string(py::str(dtype_)) + ", got " +
                                  std::string(py::str(frame.dtype())));
        std::vector<py::ssize_t> got(frame.shape(), frame.shape() + frame.ndim());
        if (got != shape_)
            throw py::value_error("RingBuffer.push(): frame shape must be " + shape_str(shape_) +
                                  ", got " + shape_str(got));
    }

    void check_window(int64_t k, int64_t stride) const {
        if (k < 1 || stride < 1)
            throw py::value_error("RingBuffer: window needs k >= 1 and stride >= 1, got k=" +
                                  std::to_string(k) + ", stride=" + std::to_string(stride));
        if (k > capacity_)
            throw py::value_error("RingBuffer: window of k=" + std::to_string(k) +
                                  " frames exceeds capacity=" + std::to_string(capacity_));
        if (k - 1 > (capacity_ - 1) / stride)
            throw py::value_error("RingBuffer: window of k=" + std::to_string(k) +
                                  " frames with stride=" + std::to_string(stride) +
                                  " spans more than capacity=" + std::to_string(capacity_) +
                                  " frames");
    }

    std::vector<py::ssize_t> c_strides(const std::vector<py::ssize_t> &shape) const {
        std::vector<py::ssize_t> strides(shape.size());
        py::ssize_t s = dtype_.itemsize();
        for (std::size_t i = shape.size(); i-- > 0;) {
            strides[i] = s;
            s *= shape[i];
        }
        return strides;
    }

    // Shape of n frames: (n, *shape).
    std::vector<py::ssize_t> frames_shape(int64_t n) const {
        std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(n)};
        shape.insert(shape.end(), shape_.begin(), shape_.end());
        return shape;
    }

    // A C-contiguous array of `shape` at `first` sharing the buffer's memory;
    // `owner` (the Python RingBuffer) is its base, so the storage outlives it.
    py::array view(py::handle owner, std::byte *first, const std::vector<py::ssize_t> &shape,
                   bool writable) const {
        py::array a(dtype_, shape, c_strides(shape), first, owner);
        if (!writable) a.attr("setflags")("write"_a = false);
        return a;
    }

    // Frames end - (k-1)*stride, ..., end (oldest first): a read-only view when
    // they are adjacent in memory, else one new array. The flag tells whether
    // they were all still retained after the copy (always true for a view).
    std::pair<py::array, bool> read(py::handle owner, int64_t end, int64_t k,
                                    int64_t stride) const {
        const int64_t span = (k - 1) * stride;  // check_window() bounds it
        const int64_t head = head_.load(std::memory_order_acquire);
        const int64_t oldest = std::max<int64_t>(0, head - capacity_);
        if (end >= head || end < oldest + span) {
            std::string held = head == 0 ? "no frames"
                                         : "frames " + std::to_string(oldest) + ".." +
                                               std::to_string(head - 1);
            throw py::index_error("RingBuffer: the window of k=" + std::to_string(k) +
                                  ", stride=" + std::to_string(stride) + " ending at frame " +
                                  std::to_string(end) + " is not in the buffer, which holds " +
                                  held);
        }
        const int64_t start = end - span;
        if (k == 1 || (stride == 1 && start % nslots_ + k <= nslots_))
            return {view(owner, slot(start), frames_shape(k), /*writable=*/false), true};

        py::array out(dtype_, frames_shape(k));
        {
            std::optional<py::gil_scoped_release> nogil;
            if (static_cast<std::size_t>(k) * slot_bytes_ >= kNoGilCopyBytes) nogil.emplace();
            seqlock_copy(static_cast<std::byte *>(out.mutable_data()), start, k, stride);
        }
        return {std::move(out), is_valid(start)};
    }

    // Copies frames start, start + stride, ... (k of them) to dst. This read
    // races with a producer that laps the frames meanwhile; the caller then
    // discards the copy (is_valid()).
    void seqlock_copy(std::byte *dst, int64_t start, int64_t k, int64_t stride) const {
        for (int64_t i = 0; i < k; ++i)
            std::memcpy(dst + static_cast<std::size_t>(i) * slot_bytes_, slot(start + i * stride),
                        slot_bytes_);
    }

    const int64_t capacity_;
    const int64_t nslots_;
    const std::vector<py::ssize_t> shape_;
    const py::dtype dtype_;
    std::size_t slot_bytes_ = 0;
    std::size_t nbytes_ = 0;
    std::unique_ptr<std::byte[], AlignedFree> data_;

    std::atomic<int64_t> head_{0};       // frames committed (written)
    std::atomic<int64_t> consumed_{-1};  // highest index passed to consume()
    std::atomic<int64_t> dropped_{0};    // written by the producer only
    std::atomic<bool> closed_{false};
    bool claimed_ = false;  // producer only: slot of frame head_ is claimed

    std::atomic<int> waiters_{0};  // threads inside wait_for()
    std::mutex mu_;
    std::condition_variable cv_;
};

constexpr const char *kClassDoc = R"doc(
Single-producer/single-consumer ring buffer of fixed-shape frames.

RingBuffer(capacity, shape, dtype="uint8") preallocates one contiguous block
for `capacity` + 1 slots of `shape` (any shape: (H, W, C) images or (D,)
embeddings) and dtype uint8 or float32. Frame i (0, 1, 2, ...) lives in slot
i % (capacity + 1); the buffer retains the last `capacity` committed frames,
the extra slot being the one the producer writes next.

Producer (one thread): `slot = rb.claim()` returns a writable view of the next
slot (decode straight into it), `rb.commit()` publishes it and returns its
index; `rb.push(frame)` copies one frame in. The producer never blocks: each
commit evicts the oldest retained frame once `capacity` frames are held.

Consumer (one thread): `rb.window(k, stride=1)` returns frames
latest - (k-1)*stride, ..., latest (newest last), `rb.window_at(end_index, k,
stride=1)` the same ending at `end_index`. The result is a read-only view of
the buffer (base is the RingBuffer, no copy) when the frames are adjacent in
memory (stride 1 or k 1) and do not wrap; otherwise it is one new C-contiguous
array. A view keeps the buffer alive, but it is valid only until the producer
laps it: frame s leaves the buffer when frame s + capacity is committed, and
its slot is rewritten from the next claim() or push() on. After using a view
(or anything read from frames s..latest), `rb.is_valid(s)` tells whether they
were still intact. Copies are checked this way before they are returned.

`rb.consume(up_to_index)` marks frames <= up_to_index as consumed. `dropped`
counts frames evicted (overwritten) before they were marked consumed: frame j
is evicted by the commit of frame j + capacity, and counts as dropped if
consume() had not yet been called with an index >= j at that moment.

Requested frames not (or no longer) in the buffer raise IndexError; invalid
arguments (shape, dtype, k, stride, capacity) raise ValueError; producer calls
after close() or commit() without claim() raise RuntimeError.
)doc";

}  // namespace

void register_ring_buffer(py::module_ &m) {
    py::class_<RingBuffer>(m, "RingBuffer", py::buffer_protocol(), kClassDoc)
        .def(py::init<int64_t, std::vector<py::ssize_t>, const py::object &>(), "capacity"_a,
             "shape"_a, "dtype"_a = "uint8")
        .def_buffer([](const RingBuffer &rb) { return rb.buffer_info(); })
        .def(
            "claim", [](py::object self) { return self.cast<RingBuffer &>().claim(self); },
            "Writable view of the slot of the next frame (the same slot again until commit()).")
        .def("commit", &RingBuffer::commit,
             "Publish the claimed slot as the next frame; returns its index.")
        .def(
            "push",
            [](py::object self, const py::array &frame) {
                return self.cast<RingBuffer &>().push(self, frame);
            },
            "frame"_a, "Copy one frame (exact shape and dtype) in; returns its index.")
        .def("close", &RingBuffer::close,
             "Mark the stream ended and wake wait_for(); later producer calls raise.")
        .def(
            "window",
            [](py::object self, int64_t k, int64_t stride) {
                return self.cast<const RingBuffer &>().window(self, k, stride);
            },
            "k"_a, "stride"_a = 1,
            "Frames latest-(k-1)*stride .. latest, newest last: a view if adjacent, else a copy.")
        .def(
            "window_at",
            [](py::object self, int64_t end_index, int64_t k, int64_t stride) {
                return self.cast<const RingBuffer &>().window_at(self, end_index, k, stride);
            },
            "end_index"_a, "k"_a, "stride"_a = 1,
            "Frames end_index-(k-1)*stride .. end_index, like window().")
        .def("consume", &RingBuffer::consume, "up_to_index"_a = py::none(),
             "Mark frames <= up_to_index (default: latest_index) as consumed.")
        .def("wait_for", &RingBuffer::wait_for, "index"_a, "timeout_s"_a = py::none(),
             "Block (GIL released) until frame `index` is committed, the buffer is closed or "
             "timeout_s passes; returns whether the frame is committed.")
        .def("is_valid", &RingBuffer::is_valid, "start_index"_a,
             "Whether frames start_index .. latest_index are all still retained (not lapped).")
        .def("slot_address", &RingBuffer::slot_address, "index"_a,
             "Address of the slot that holds (or will hold) frame `index`.")
        .def_property_readonly("capacity", &RingBuffer::capacity)
        .def_property_readonly("shape", &RingBuffer::shape, "Shape of one frame.")
        .def_property_readonly("dtype", &RingBuffer::dtype)
        .def_property_readonly("nbytes", &RingBuffer::nbytes,
                               "Bytes of storage: (capacity + 1) slots.")
        .def_property_readonly("written", &RingBuffer::written, "Frames committed in total.")
        .def_property_readonly("latest_index", &RingBuffer::latest_index,
                               "Index of the newest committed frame (-1 if none).")
        .def_property_readonly("size", &RingBuffer::size, "Frames retained: min(written, capacity).")
        .def_property_readonly("dropped", &RingBuffer::dropped,
                               "Frames evicted before consume() marked them.")
        .def_property_readonly("consumed_index", &RingBuffer::consumed_index,
                               "Highest index passed to consume() (-1 if none).")
        .def_property_readonly("closed", &RingBuffer::closed)
        .def("__repr__", &RingBuffer::repr);
}
