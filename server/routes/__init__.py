"""HTTP routers: pages (the tuner page), runs (stored runs, reports, heuristics downloads), native (kernels run here)."""
