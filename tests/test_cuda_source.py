"""The CUDA C++ source without a GPU or NVRTC: assembled from shaders/*.cu (native/shaders.cuda_source) the way
native/cuda.py compiles it, every kernel it launches defined there, and its #defines equal to the constants the
launch logic sizes grids and shared memory with."""
import re

from spiraltorch_tuner import cuda
from spiraltorch_tuner.paths import SHADERS
from spiraltorch_tuner.shaders import CUDA_MODULE, cuda_source


def test_the_module_is_the_cu_files_in_order():
    src = cuda_source()
    parts = [(SHADERS / name).read_text(encoding="utf-8") for name in CUDA_MODULE]
    assert src == "\n" + "\n".join(parts)
    assert src.index("topk_rows") < src.index("where_vec_impl") < src.index("void spin(")


def test_every_launched_kernel_is_defined_once():
    src = cuda_source()
    defined = re.findall(r'^extern "C" __global__ void (?:__launch_bounds__\([^)]*\)\s*)?(\w+)\(', src, re.M)
    defined += [f"where_vec{v}" for v in re.findall(r"^WHERE_VEC\((\d+),", src, re.M)]
    assert sorted(defined) == sorted(cuda.KERNELS)


def test_defines_match_the_launch_constants():
    src = cuda_source()
    defines = dict(re.findall(r"^#define (\w+) (\S+)$", src, re.M))
    assert int(defines["SEG"]) == cuda.SEG
    assert int(defines["HBITS"]) == cuda.HBITS
    assert int(defines["HBINS"]) == 1 << cuda.HBITS
    assert int(defines["CL_MAXC"]) == cuda.CLUSTER_MAX


def test_no_python_module_holds_cuda_source():
    assert not hasattr(cuda, "CUDA_SRC")
    assert "__global__" not in (SHADERS.parent / "native" / "cuda.py").read_text(encoding="utf-8")
