"""tether: a self-hostable platform for connected hardware products."""

from tether.errors import TetherError
from tether.settings import Settings, load_settings

__version__ = "0.1.0"

__all__ = ["Settings", "TetherError", "__version__", "load_settings"]
