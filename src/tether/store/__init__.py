"""tether's stores. ``tether.store.telemetry`` holds accepted events by device and time."""
