"""Provisioning and certificate-verification throughput, as ratios to raw P-256.

    .venv/bin/python bench/provision.py [--count 10000] [--verify 2000] [--keys-url URL]

Prints devices provisioned per second, then certificate verifications per
second with a cold cache (chain signature, validity, registry look-up) and a
warm one (fingerprint look-up), each as a ratio to raw OpenSSL P-256 signature
verifications per second measured in the same run on the same core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tether.identity.verifier import CertificateVerifier
from tether.platform import Platform
from tether.settings import load_settings

console = Console()


def raw_p256_per_second(seconds: float = 2.0) -> float:
    """Raw ECDSA P-256 / SHA-256 verifications per second of a 200-byte payload."""
    key = ec.generate_private_key(ec.SECP256R1())
    payload = b"x" * 200
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            public.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
        done += 200
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="devices to provision")
    parser.add_argument("--verify", type=int, default=2_000, help="certificates to verify")
    parser.add_argument("--keys-url", default="", help="CA key custody (default: key files)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"data_dir": tmp, "keys_url": args.keys_url}
        settings = load_settings(overrides, config_file=Path(tmp) / "none.toml", environ={})
        platform = Platform.open(settings)
        platform.authority.init_tenant("bench")

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("provisioning", total=args.count)
            start = time.perf_counter()
            made = platform.provisioner.provision(
                platform.secure_elements,
                "bench",
                "bench-device",
                "A",
                args.count,
                on_progress=lambda n: progress.advance(task, n),
            )
            provision_rate = len(made) / (time.perf_counter() - start)

        sample = made[: args.verify]
        certs = [
            x509.load_pem_x509_certificate(platform.secure_elements.certificate(d.serial).encode())
            for d in sample
        ]
        verifier = CertificateVerifier(platform.registry, poll_seconds=3600)
        start = time.perf_counter()
        for cert in certs:
            verifier.verify(cert)
        cold_rate = len(certs) / (time.perf_counter() - start)
        rounds = 20
        start = time.perf_counter()
        for _ in range(rounds):
            for cert in certs:
                verifier.verify(cert)
        warm_rate = rounds * len(certs) / (time.perf_counter() - start)
        raw = raw_p256_per_second()
        platform.close()

    table = Table(
        "measure",
        "per second",
        "ratio to raw P-256 verify",
        title=f"provisioning and verification ({args.count:,} devices)",
    )
    table.add_row("raw P-256 verifications", f"{raw:,.0f}", "1.00")
    table.add_row("devices provisioned", f"{provision_rate:,.0f}", f"{provision_rate / raw:.2f}")
    table.add_row("certificate verifications, cold", f"{cold_rate:,.0f}", f"{cold_rate / raw:.2f}")
    table.add_row("certificate verifications, warm", f"{warm_rate:,.0f}", f"{warm_rate / raw:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
