"""Database: typed SQLAlchemy models, sessions, and Alembic migrations applied at start."""
