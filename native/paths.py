"""Where the project's data lives: shaders/ (the WGSL and CUDA C++ kernels, the search space) and static/ (the
page's modules). An installed wheel carries them inside the package, as spiraltorch_tuner/data/shaders and
spiraltorch_tuner/data/static (pyproject.toml's package-data); in a checkout, and an editable install of one, they
are the repository's folders beside native/."""
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent          # the repository, in a checkout (tests write test-output/ there)


def _data(name: str) -> Path:
    installed = PACKAGE / "data" / name
    return installed if installed.is_dir() else ROOT / name


SHADERS = _data("shaders")
STATIC = _data("static")
