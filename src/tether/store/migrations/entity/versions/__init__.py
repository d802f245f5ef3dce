"""The entity store's revisions, oldest first by ``down_revision``."""
