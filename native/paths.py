"""Where the project's data lives: the WGSL shaders and the search space are read from the repository."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHADERS = ROOT / "shaders"
STATIC = ROOT / "static"
