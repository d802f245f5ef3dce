"""Device class packs: a new device class is configuration, not code."""

from tether.classes.catalog import ClassCatalog, load_catalog
from tether.classes.pack import ClassPack

__all__ = ["ClassCatalog", "ClassPack", "load_catalog"]
