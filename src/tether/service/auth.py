"""Operator tokens for the HTTP API.

The operator token comes from ``admin_token`` in the settings or, when that is
empty, from ``<data_dir>/admin-token``, made on first use with mode 0600.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tether.settings import Settings


def admin_token(settings: Settings) -> str:
    if settings.admin_token:
        return settings.admin_token
    path = Path(settings.data_dir) / "admin-token"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token
