"""spiraltorch_tuner.server: the web app that tunes WGSL kernels in the browser and generates wgpu_heuristics.rs."""
__version__ = "0.1.0"
