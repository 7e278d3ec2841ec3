"""Build of the C++ core (csrc/) as the extension module edgecount._core.

Set EDGECOUNT_SANITIZE=address or EDGECOUNT_SANITIZE=thread to build it with
AddressSanitizer or ThreadSanitizer (see README, "Sanitizer builds").
"""
import os

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

sanitize = os.environ.get("EDGECOUNT_SANITIZE", "")
extra_compile = ["-O3" if not sanitize else "-O1", "-g" if sanitize else "-g0"]
extra_link: list[str] = []
if sanitize:
    extra_compile += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer"]
    extra_link += [f"-fsanitize={sanitize}"]

ext = Pybind11Extension(
    "edgecount._core",
    sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".cpp")),
    cxx_std=17,
    extra_compile_args=extra_compile,
    extra_link_args=extra_link,
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
