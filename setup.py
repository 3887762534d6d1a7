"""The one compiled piece: the exact Hamming k-NN kernel (src/vsb2net/_hamming.c), loaded
with ctypes.  Everything else about the package is in pyproject.toml.  `make install` (and so
`make run` / `make test`) builds it through `pip install -e .`; where no C compiler is found the
install still succeeds and the `flat` backend falls back to numpy (slower, same results)."""
import platform

from setuptools import Extension, setup

# POPCNT is part of x86-64-v2 (every x86-64 CPU since about 2009); elsewhere the builtin maps to
# the architecture's own population count
flags = ["-O3"] + (["-mpopcnt"] if platform.machine() in ("x86_64", "AMD64") else [])

setup(ext_modules=[Extension("vsb2net._hamming", sources=["src/vsb2net/_hamming.c"],
                             extra_compile_args=flags, optional=True)])
