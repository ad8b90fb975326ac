"""The Alembic migration builds the whole schema on an empty database."""

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.processes import migrate

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "campaigns",
    "entries",
    "criteria",
    "kiosks",
    "ballots",
    "ballot_choices",
    "exclusions",
    "experts",
    "assignments",
    "scores",
    "score_history",
    "ranking_runs",
    "publications",
    "audit_events",
    "api_tokens",
    "nightly_marks",
    "alembic_version",
}


def _upgrade(url: str, tmp_path) -> None:
    env = {**os.environ, "DATABASE_URL": url, "VOTES_INSTANCE": str(tmp_path)}
    migrate(env)


def _check(url: str) -> None:
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        assert set(insp.get_table_names()) >= TABLES
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("ballots")}
        assert ("campaign_id", "voter_key", "dedup_slot") in uniques
        assert {tuple(u["column_names"]) for u in insp.get_unique_constraints("scores")} >= {
            ("expert_id", "entry_id")
        }
        pk = insp.get_pk_constraint("ballot_choices")["constrained_columns"]
        assert sorted(pk) == ["ballot_id", "entry_id"]
    finally:
        engine.dispose()


@pytest.mark.slow  # `votes db upgrade` as a process
def test_migration_on_empty_sqlite(tmp_path):
    """`votes db upgrade` builds every table and dedup constraint on an empty SQLite file."""
    url = f"sqlite:///{tmp_path}/fresh.db"
    _upgrade(url, tmp_path)
    _check(url)


def _postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("postgres") else None


@pytest.mark.slow  # `votes db upgrade` as a process
@pytest.mark.skipif(
    _postgres_url() is None,
    reason="runs in the PostgreSQL pass of .ci/run (DATABASE_URL=postgresql://…)",
)
def test_migration_on_empty_postgres(tmp_path):
    """`votes db upgrade` builds every table and dedup constraint on an empty PostgreSQL db."""
    from service.config import normalise_db_url

    base = normalise_db_url(_postgres_url())
    name = f"votes_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        _upgrade(url, tmp_path)
        _check(url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
