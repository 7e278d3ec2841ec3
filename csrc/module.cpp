// edgecount._core: the C++ core of edgecount, exposed to Python with pybind11.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_ring_buffer(py::module_ &m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "edgecount C++ core";
    py::module_::import("numpy");  // the ring buffer's arrays and dtypes need numpy loaded
    register_ring_buffer(m);
}
