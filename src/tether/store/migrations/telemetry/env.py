"""Alembic's entry point for the telemetry store (tether.store.migrations configures it)."""

from tether.store.migrations import run_env

run_env()
