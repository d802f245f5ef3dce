"""Projections: state derived from the accepted-event log, rebuildable from it."""
