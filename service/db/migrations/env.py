"""Alembic environment: runs on the engine the service hands over (``config.attributes['engine']``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from service.tables import Base

config = context.config
engine: Engine | None = config.attributes.get("engine")
if engine is None:  # `alembic` run by hand: use the configured settings
    from service.crypto import keyring_for
    from service.db.session import make_engine
    from service.settings import get_settings

    engine = make_engine(get_settings())
    config.attributes["keyring"] = keyring_for(get_settings())

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
