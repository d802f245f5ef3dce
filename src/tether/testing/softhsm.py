"""SoftHSM2 for tests: a PKCS#11 token in a temporary directory.

SoftHSM reads its configuration (``SOFTHSM2_CONF``) once, when the PKCS#11 module is
loaded, and python-pkcs11 loads a module once per process: use one token per test
session.
"""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path
from typing import Self

from tether.errors import EngineError
from tether.testing.engines import Engine, find_binary

__all__ = ["SoftHsmToken", "softhsm_module"]


def softhsm_module() -> Path:
    """The SoftHSM2 PKCS#11 module (``libsofthsm2.so``)."""
    patterns = (
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/*/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
    )
    for pattern in patterns:
        for match in sorted(glob.glob(pattern)):
            return Path(match)
    raise EngineError(
        "the SoftHSM2 PKCS#11 module libsofthsm2.so was not found in /usr/lib/softhsm; "
        "install it (Debian: apt-get install softhsm2)"
    )


def _module_loaded(module: Path) -> bool:
    """Whether this process has the PKCS#11 module mapped (Linux: /proc/self/maps)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    real = os.path.realpath(module)
    return str(module) in maps or real in maps


class SoftHsmToken(Engine):
    """A SoftHSM2 token in its own temporary token directory.

    ``start()`` writes a ``softhsm2.conf``, points ``SOFTHSM2_CONF`` at it in this
    process's environment (SoftHSM reads it only there, once, when the module is
    first loaded) and initialises a token. Because python-pkcs11 loads a module once
    per process, start one token per test session, before anything loads the module.
    """

    name = "softhsm"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        label: str = "tether-test",
        pin: str = "1234",
        so_pin: str = "12345678",
    ) -> None:
        super().__init__(workdir)
        self.label = label
        self.pin = pin
        self.so_pin = so_pin
        self.module: Path | None = None
        self._output = ""
        self._previous_conf: str | None = None
        self._started = False

    @property
    def conf_path(self) -> Path:
        return self.workdir / "softhsm2.conf"

    @property
    def url(self) -> str:
        """The token as tether's key custody URL (RFC 7512)."""
        if self.module is None:
            raise EngineError("the SoftHSM token has not been started")
        return f"pkcs11:token={self.label}?module-path={self.module}&pin-value={self.pin}"

    def start(self) -> Self:
        if self._started:
            return self
        self.module = softhsm_module()
        util = find_binary("softhsm2-util", "softhsm2")
        current = os.environ.get("SOFTHSM2_CONF")
        if _module_loaded(self.module):
            raise EngineError(
                f"this process has already loaded {self.module} (with SOFTHSM2_CONF="
                f"{current!r}), and SoftHSM reads its configuration only on the first load; "
                "start one SoftHsmToken per process, before anything uses PKCS#11"
            )
        root = self._make_workdir()
        tokens = root / "tokens"
        tokens.mkdir(mode=0o700, exist_ok=True)
        self.conf_path.write_text(
            f"directories.tokendir = {tokens}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
        )
        env = {**os.environ, "SOFTHSM2_CONF": str(self.conf_path)}
        done = subprocess.run(
            [
                str(util),
                "--init-token",
                "--free",
                "--label",
                self.label,
                "--pin",
                self.pin,
                "--so-pin",
                self.so_pin,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        self._output = done.stdout + done.stderr
        if done.returncode != 0:
            self._remove_workdir()
            raise EngineError(
                f"softhsm2-util could not initialise token {self.label!r} "
                f"(exit code {done.returncode}): {self._output.strip()}"
            )
        self._previous_conf = current
        os.environ["SOFTHSM2_CONF"] = str(self.conf_path)
        self._started = True
        return self

    def stop(self) -> None:
        if self._started and os.environ.get("SOFTHSM2_CONF") == str(self.conf_path):
            if self._previous_conf is None:
                os.environ.pop("SOFTHSM2_CONF", None)
            else:
                os.environ["SOFTHSM2_CONF"] = self._previous_conf
        self._started = False
        self._remove_workdir()

    def log(self) -> str:
        return self._output
