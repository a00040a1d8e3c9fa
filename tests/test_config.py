"""Settings from defaults, a TOML file and TIDINGS_* variables, with errors that name the setting."""

from __future__ import annotations

import pytest

from tidings.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_single_node():
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.broker == "memory://" and settings.store.startswith("sqlite://")
    assert settings.namespaces["room"].presence is True
    assert settings.namespaces["user"].subscribe == "owner"
    assert not settings.auth_enabled


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    config = tmp_path / "tidings.toml"
    config.write_text('port = 9000\nbroker = "redis://127.0.0.1:6379/0"\n'
                      '[namespaces.room]\nhistory_size = 50\n')
    monkeypatch.setenv("TIDINGS_PORT", "9100")
    settings = load_settings(config)
    assert settings.port == 9100
    assert settings.broker == "redis://127.0.0.1:6379/0"
    assert settings.namespaces["room"].history_size == 50
    assert settings.namespaces["room"].presence is True  # untouched options keep defaults


def test_nested_namespace_variable_changes_only_that_option(monkeypatch):
    monkeypatch.setenv("TIDINGS_NAMESPACES__ROOM__JOIN_LEAVE", "false")
    room = load_settings().namespaces["room"]
    assert room.join_leave is False and room.presence is True and room.history_size == 1000


def test_a_new_namespace_can_be_declared(tmp_path):
    config = tmp_path / "t.toml"
    config.write_text('[namespaces.alerts]\nhistory_size = 10\npublish = "server"\n')
    assert load_settings(config).namespaces["alerts"].publish == "server"


@pytest.mark.parametrize("env, setting", [
    ({"TIDINGS_PORT": "abc"}, "port"),
    ({"TIDINGS_PORT": "70000"}, "port"),
    ({"TIDINGS_PING_INTERVAL": "-1"}, "ping_interval"),
    ({"TIDINGS_NAMESPACES__ROOM__PUBLISH": "everybody"}, "namespaces.room.publish"),
    ({"TIDINGS_NAMESPACES__ROOM__HISTORY_SIZE": "-5"}, "namespaces.room.history_size"),
])
def test_bad_values_name_the_setting(monkeypatch, env, setting):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert setting in str(err.value)


def test_missing_file_unknown_setting_and_bad_toml_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="colour"):
        load_settings(unknown)
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1\n")
    with pytest.raises(ConfigError):
        load_settings(broken)
