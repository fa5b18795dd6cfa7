"""REST endpoints that run kernels natively (wgpu-py, CUDA, MPS, NumPy). Filled in by the native-execution work."""
from fastapi import APIRouter

router = APIRouter()
