"""Settings: defaults are the embedded backends; bad values name the setting."""

from __future__ import annotations

import pytest

from reelplane.errors import ConfigError
from reelplane.settings import SCHEMES, load_settings, setting_name
from reelplane.urls import redact

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("REELPLANE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir("/")  # no stray .env file


def test_defaults_are_the_embedded_backends() -> None:
    s = load_settings()
    assert s.database_url.startswith("sqlite+aiosqlite://")
    assert s.bus_url == "memory://"
    assert s.cache_url == "memory://"
    assert s.widerow_url.startswith("sqlite://")
    assert s.objects_url.startswith("file://")


def test_real_backends_are_chosen_by_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELPLANE_BUS_URL", "kafka://127.0.0.1:9092")
    monkeypatch.setenv("REELPLANE_CACHE_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REELPLANE_DATABASE_URL", "mysql+asyncmy://u:p@127.0.0.1/db")
    monkeypatch.setenv("REELPLANE_WIDEROW_URL", "cassandra://127.0.0.1:9042/ks")
    monkeypatch.setenv("REELPLANE_OBJECTS_URL", "s3://bucket?endpoint=http://127.0.0.1:7070")
    s = load_settings()
    assert s.bus_url.startswith("kafka://")
    assert s.objects_url.startswith("s3://")


@pytest.mark.parametrize("field", sorted(SCHEMES))
def test_unknown_scheme_names_the_setting(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    monkeypatch.setenv(setting_name(field), "postgres://somewhere/x")
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith(f"{setting_name(field)}: unsupported scheme postgres://")
    assert "expected one of" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REELPLANE_HTTP_PORT", "not-a-port"),
        ("REELPLANE_HTTP_PORT", "70000"),
        ("REELPLANE_LOG_FORMAT", "xml"),
        ("REELPLANE_BUS_PARTITIONS", "0"),
    ],
)
def test_invalid_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith(f"{name}: ")
    assert err.value.setting == name


def test_redact_hides_passwords_and_secret_keys() -> None:
    # Nothing secret: the URL exactly as written (no slash of an empty host lost).
    assert (
        redact("sqlite+aiosqlite:///.reelplane/db.sqlite")
        == "sqlite+aiosqlite:///.reelplane/db.sqlite"
    )
    assert redact("memory://") == "memory://"
    assert redact("mysql+asyncmy://u:hunter2@h/db") == "mysql+asyncmy://u:***@h/db"
    shown = redact("s3://b?endpoint=http://h&access_key=AK&secret_key=SK")
    assert "SK" not in shown
    assert "access_key=AK" in shown
