"""Value objects for the wire contract's nouns (docs/contracts/wire-v1.md)."""

from tether.contract.values import Serial

__all__ = ["Serial"]
