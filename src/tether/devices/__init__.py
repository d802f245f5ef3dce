"""Devices in software: simulated secure elements (and, later, the fleet simulator)."""
