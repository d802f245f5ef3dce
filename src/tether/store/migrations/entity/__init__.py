"""The entity store's Alembic script directory (see ``tether.store.migrations``)."""
