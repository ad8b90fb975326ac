"""Configuration from the environment."""

import secrets

import pytest

from service.config import Config, ConfigError, normalise_db_url

KEY, PEPPER = secrets.token_hex(32), secrets.token_urlsafe(32)


@pytest.fixture
def production(monkeypatch):
    monkeypatch.setenv("VOTES_ENV", "production")
    for name in ("SECRET_KEY", "VOTER_PEPPER", "SECRET_KEY_FILE", "VOTER_PEPPER_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", KEY)
    monkeypatch.setenv("VOTER_PEPPER", PEPPER)
    return monkeypatch


def test_production_refuses_to_start_without_secrets(monkeypatch):
    """VOTES_ENV=production without SECRET_KEY or VOTER_PEPPER stops with a clear message."""
    monkeypatch.setenv("VOTES_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VOTER_PEPPER", PEPPER)
    with pytest.raises(ConfigError, match="SECRET_KEY is required"):
        Config()
    monkeypatch.setenv("SECRET_KEY", KEY)
    monkeypatch.delenv("VOTER_PEPPER")
    with pytest.raises(ConfigError, match="VOTER_PEPPER is required"):
        Config()
    monkeypatch.setenv("VOTER_PEPPER", PEPPER)
    assert Config().VOTER_PEPPER == PEPPER


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


@pytest.mark.parametrize("name", ["SECRET_KEY", "VOTER_PEPPER"])
@pytest.mark.parametrize(
    "weak", ["x", "changeme", "s" * 32, "ab" * 40, secrets.token_hex(15), "密钥" * 5]
)
def test_production_refuses_weak_secrets_without_printing_them(production, name, weak):
    """Fewer than 32 bytes, or a placeholder such as 32 times the same character, stops
    start-up with a message naming the variable and never the value."""
    production.setenv(name, weak)
    with pytest.raises(ConfigError, match=f"{name} is too weak") as info:
        Config()
    assert repr(weak) not in str(info.value)
    assert len(weak) < 3 or weak not in str(info.value)


def test_production_accepts_hex_base64_and_raw_secrets_of_32_bytes(production):
    for value in (
        secrets.token_hex(16),
        secrets.token_urlsafe(24),
        "街道-投票-盐值-2026-彭浦镇-abc",
    ):
        production.setenv("VOTER_PEPPER", value)
        pepper = Config().VOTER_PEPPER
        assert pepper == value


@pytest.mark.parametrize("name", ["SECRET_KEY", "VOTER_PEPPER"])
def test_secrets_can_come_from_files(production, tmp_path, name):
    """NAME_FILE (compose secrets under /run/secrets) is read, its trailing newline
    stripped; both NAME and NAME_FILE, a missing or an empty file refuse to start."""
    value = secrets.token_hex(32)
    path = tmp_path / name.lower()
    path.write_text(value + "\n")
    production.setenv(f"{name}_FILE", str(path))
    with pytest.raises(ConfigError, match=f"set {name} or {name}_FILE, not both"):
        Config()
    production.delenv(name)
    assert getattr(Config(), name) == value

    path.write_text("short\n")
    with pytest.raises(ConfigError, match=f"{name} is too weak"):
        Config()
    path.write_text("\n")
    with pytest.raises(ConfigError, match=f"{name}_FILE: .* is empty"):
        Config()
    production.setenv(f"{name}_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=f"{name}_FILE: cannot read .*missing"):
        Config()


def test_weak_secret_stops_the_real_start_up(tmp_path):
    """`votes db upgrade` in production with SECRET_KEY=x exits non-zero naming the
    variable, without the value in its output."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "VOTES_ENV": "production",
        "SECRET_KEY": "x",
        "VOTER_PEPPER": secrets.token_hex(32),
        "VOTES_INSTANCE": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
    }
    env.pop("SECRET_KEY_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is too weak" in result.stderr + result.stdout
