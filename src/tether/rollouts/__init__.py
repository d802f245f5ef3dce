"""Staged firmware rollouts on the platform side.

- :mod:`~tether.rollouts.model`: states, the per-device state machine, typed errors;
- :mod:`~tether.rollouts.plan`: cohorts, opt-outs, stratified stages, maintenance windows;
- :mod:`~tether.rollouts.health`: the halt rules, pure functions over current data;
- :mod:`~tether.rollouts.store`: rollouts in the entity store (SQLite, PostgreSQL);
- :mod:`~tether.rollouts.tracker`: accepted events into per-device update states;
- :mod:`~tether.rollouts.monitor`: the loop that halts, notifies and moves stages on;
- :mod:`~tether.rollouts.service`: create (with the trust check), release, abort.
"""
