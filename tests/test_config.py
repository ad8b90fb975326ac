"""Configuration from the environment."""

import pytest

from service.config import Config, ConfigError, normalise_db_url


def test_production_refuses_to_start_without_secrets(monkeypatch):
    """VOTES_ENV=production without SECRET_KEY or VOTER_PEPPER stops with a clear message."""
    monkeypatch.setenv("VOTES_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VOTER_PEPPER", "p" * 32)
    with pytest.raises(ConfigError, match="SECRET_KEY is required"):
        Config()
    monkeypatch.setenv("SECRET_KEY", "s" * 32)
    monkeypatch.delenv("VOTER_PEPPER")
    with pytest.raises(ConfigError, match="VOTER_PEPPER is required"):
        Config()
    monkeypatch.setenv("VOTER_PEPPER", "p" * 32)
    assert Config().VOTER_PEPPER == "p" * 32


def test_development_generates_stable_secrets(monkeypatch, tmp_path):
    """In development the secrets are generated once into instance/ and reused."""
    monkeypatch.setenv("VOTES_INSTANCE", str(tmp_path))
    monkeypatch.delenv("VOTES_ENV", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("VOTER_PEPPER", raising=False)
    first = Config()
    second = Config()
    assert first.VOTER_PEPPER == second.VOTER_PEPPER and len(first.VOTER_PEPPER) == 64
    assert (tmp_path / "voter_pepper.txt").stat().st_mode & 0o077 == 0


def test_postgres_urls_use_psycopg3():
    """postgres:// URLs as hosting providers print them are accepted."""
    assert normalise_db_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_db_url("sqlite:///x.db") == "sqlite:///x.db"
