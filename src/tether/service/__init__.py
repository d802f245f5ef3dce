"""The HTTP service: health and the identity operations (more doors join later)."""

from tether.service.app import create_app

__all__ = ["create_app"]
