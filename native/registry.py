"""The backends by name, created lazily, and the `device="auto"` order (CUDA > MPS > WGPU > CPU). PEERS are other
projects' kernels run beside ours (SpiralTorch's wheel): listed and selectable by name, never picked by "auto"."""
from __future__ import annotations

import importlib
import threading

from .errors import BackendUnavailable

# name -> (module, class). Modules import their heavy dependency (cupy, torch, wgpu) only when first used.
_CLASSES = {"cuda": ("cuda", "CudaBackend"), "mps": ("mps", "MpsBackend"),
            "wgpu": ("wgpu_backend", "WgpuBackend"), "cpu": ("cpu", "CpuBackend"),
            "spiraltorch": ("spiraltorch_peer", "SpiralTorchBackend")}
AUTO_ORDER = ("cuda", "mps", "wgpu", "cpu")
PEERS = ("spiraltorch",)
DEVICES = ("auto",) + AUTO_ORDER + PEERS

_lock = threading.Lock()
_instances: dict = {}


def get(name: str):
    """The backend object called `name`, whether or not it is available here."""
    if name not in _CLASSES:
        raise BackendUnavailable(f"unknown device {name!r}; allowed: {', '.join(DEVICES)}")
    with _lock:
        if name not in _instances:
            mod, cls = _CLASSES[name]
            try:
                module = importlib.import_module(f"{__package__}.{mod}")
                _instances[name] = getattr(module, cls)()
            except (ImportError, AttributeError) as e:
                _instances[name] = _Missing(name, f"backend module failed to load: {e}")
        return _instances[name]


def resolve(device: str = "auto"):
    """The backend for `device`: the first available in AUTO_ORDER for "auto", else that one if it is available."""
    if device == "auto":
        for name in AUTO_ORDER:
            b = get(name)
            if b.available()[0]:
                return b
        raise BackendUnavailable("no backend is available")  # unreachable: cpu always is
    b = get(device)
    ok, why = b.available()
    if not ok:
        raise BackendUnavailable(f"device {device!r} is not available: {why}")
    return b


def backends() -> list[dict]:
    """Every backend with its availability, the reason when unavailable, and its device description (ours in
    AUTO_ORDER, then the peers)."""
    out = []
    for name in AUTO_ORDER + PEERS:
        b = get(name)
        ok, why = b.available()
        entry = {"name": name, "available": ok, "reason": why or None}
        if ok:
            try:
                entry["info"] = b.info()
            except Exception as e:  # an adapter that vanished between calls
                entry.update(available=False, reason=f"info failed: {e}")
        out.append(entry)
    return out


class _Missing:
    def __init__(self, name, why):
        self.name, self._why = name, why

    def available(self):
        return False, self._why

    def info(self):
        raise BackendUnavailable(self._why)
