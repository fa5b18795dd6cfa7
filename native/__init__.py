"""SpiralTorch: TopK and where_nd on WebGPU (wgpu-py), CUDA (CuPy), MPS and NumPy."""
