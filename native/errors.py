"""Exceptions of the spiraltorch_tuner API: precise types whose messages say what was wrong and what is allowed."""


class SpiralTorchError(Exception):
    """Base class of every error raised on purpose by spiraltorch_tuner."""


class ShapeError(SpiralTorchError, ValueError):
    """A shape, k, or broadcast that the kernels do not accept."""


class DTypeError(SpiralTorchError, TypeError):
    """An array of a dtype that the kernels do not accept."""


class ParamsError(SpiralTorchError, ValueError):
    """A kernel configuration outside the search space or illegal on this device."""


class BackendUnavailable(SpiralTorchError, RuntimeError):
    """The requested backend cannot run here; the message says why."""


class Unsupported(SpiralTorchError, ValueError):
    """An operation this backend does not have (SpiralTorch's peer backend has no where_nd)."""


class KernelError(SpiralTorchError, RuntimeError):
    """A kernel failed on the device (pipeline error, device lost, out of memory)."""
