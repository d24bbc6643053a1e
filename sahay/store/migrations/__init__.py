"""Alembic migrations of Sahay's database; ``sahay.store.db.migrate`` runs them."""
