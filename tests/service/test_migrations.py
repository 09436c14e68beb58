from __future__ import annotations

from alembic import command
from sqlalchemy.engine import Connection

from service.app import Core
from service.db.migrate import alembic_config


async def test_models_and_migrations_agree(core: Core) -> None:
    """`alembic check`: the migrations (already applied by build_core) match the models."""

    def check(connection: Connection) -> None:
        command.check(alembic_config(str(core.engine.url), connection))

    async with core.engine.connect() as connection:
        await connection.run_sync(check)
