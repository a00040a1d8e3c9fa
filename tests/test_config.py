"""Settings from defaults, a TOML file and TIDINGS_* variables, with errors that name the setting."""

from __future__ import annotations

import os

import pytest

from tidings.config import DEFAULT_NAMESPACES, ConfigError, Namespace, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)


def _toml(tmp_path, text: str):
    path = tmp_path / "tidings.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_single_node():
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.broker == "memory://" and settings.store == "sqlite:///tidings.db"
    assert settings.group_commit is True
    assert (settings.ping_interval, settings.pong_timeout, settings.connect_timeout) == (25, 10, 10)
    assert settings.max_frame_bytes == 65536 and settings.max_outgoing_bytes == 4 * 1024 * 1024
    assert settings.cluster_ttl == 15 and settings.shutdown_grace == 5
    assert settings.jwt_secret is None and settings.jwt_public_key is None
    assert settings.api_key is None and not settings.auth_enabled
    assert settings.loopback_only
    assert settings.node_name  # generated: hostname and a random part


def test_default_namespaces():
    namespaces = load_settings().namespaces
    assert set(namespaces) == set(DEFAULT_NAMESPACES) == {"user", "room", "broadcast", "voice"}
    user, room, broadcast, voice = (namespaces[n] for n in ("user", "room", "broadcast", "voice"))
    assert (user.subscribe, user.publish, user.history_size) == ("owner", "anyone", 1000)
    assert (room.presence, room.join_leave, room.publish, room.stored) == (True, True, "members",
                                                                          True)
    assert (broadcast.publish, broadcast.subscribe, broadcast.history_size) == ("server",
                                                                                 "server", 100)
    assert voice.history_size == 0 and not voice.stored and voice.presence


def test_generated_node_names_differ():
    assert load_settings().node_name != load_settings().node_name


def test_file_values_replace_defaults(tmp_path):
    settings = load_settings(_toml(tmp_path, 'port = 9000\nnode_name = "gw-1"\n'
                                              'broker = "redis://127.0.0.1:6379/0"\n'))
    assert (settings.port, settings.node_name) == (9000, "gw-1")
    assert settings.broker == "redis://127.0.0.1:6379/0"
    assert settings.host == "127.0.0.1"  # what the file does not name keeps its default


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    config = _toml(tmp_path, 'port = 9000\nbroker = "redis://127.0.0.1:6379/0"\n'
                             'node_name = "from-file"\n')
    monkeypatch.setenv("TIDINGS_PORT", "9100")
    monkeypatch.setenv("TIDINGS_NODE_NAME", "from-env")
    settings = load_settings(config)
    assert (settings.port, settings.node_name) == (9100, "from-env")
    assert settings.broker == "redis://127.0.0.1:6379/0"


def test_keyword_overrides_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("TIDINGS_PORT", "9100")  # the command line's --port beats the variable
    assert load_settings(port=9200).port == 9200


def test_nested_namespace_variable_changes_only_that_option(monkeypatch):
    monkeypatch.setenv("TIDINGS_NAMESPACES__ROOM__HISTORY_SIZE", "500")
    namespaces = load_settings().namespaces
    room = namespaces["room"]
    assert room.history_size == 500
    assert (room.presence, room.join_leave, room.publish, room.subscribe) == (True, True,
                                                                              "members", "anyone")
    assert room.history_ttl == 0 and room.recovery_max == 10_000
    for name in ("user", "broadcast", "voice"):  # other namespaces untouched
        assert namespaces[name] == Namespace(**DEFAULT_NAMESPACES[name])


def test_nested_namespace_variable_merges_with_the_file(tmp_path, monkeypatch):
    config = _toml(tmp_path, "[namespaces.room]\npresence = false\nhistory_size = 7\n")
    monkeypatch.setenv("TIDINGS_NAMESPACES__ROOM__HISTORY_SIZE", "5")
    room = load_settings(config).namespaces["room"]
    assert room.history_size == 5  # the variable wins
    assert room.presence is False  # the file's other option stays
    assert room.join_leave is True  # and the built-in default of the rest


def test_file_namespace_keeps_the_other_built_in_options(tmp_path):
    room = load_settings(_toml(tmp_path, "[namespaces.room]\nhistory_size = 50\n")
                         ).namespaces["room"]
    assert room.history_size == 50 and room.presence is True and room.join_leave is True


def test_a_new_namespace_starts_from_the_option_defaults(tmp_path):
    config = _toml(tmp_path, '[namespaces.alerts]\nhistory_size = 10\npublish = "server"\n')
    alerts = load_settings(config).namespaces["alerts"]
    assert (alerts.history_size, alerts.publish) == (10, "server")
    assert (alerts.subscribe, alerts.presence, alerts.join_leave) == ("anyone", False, False)


def test_a_new_namespace_from_the_environment(monkeypatch):
    monkeypatch.setenv("TIDINGS_NAMESPACES__ALERTS__PUBLISH", "server")
    namespaces = load_settings().namespaces
    assert namespaces["alerts"].publish == "server" and namespaces["room"].presence


def test_list_setting_from_the_environment_is_json(monkeypatch):
    monkeypatch.setenv("TIDINGS_JWT_ALGORITHMS", '["RS256"]')
    assert load_settings().jwt_algorithms == ["RS256"]


@pytest.mark.parametrize("env, setting", [
    ({"TIDINGS_PORT": "abc"}, "port"),
    ({"TIDINGS_PORT": "70000"}, "port"),
    ({"TIDINGS_PORT": "-1"}, "port"),
    ({"TIDINGS_PING_INTERVAL": "-1"}, "ping_interval"),
    ({"TIDINGS_PONG_TIMEOUT": "0"}, "pong_timeout"),
    ({"TIDINGS_MAX_FRAME_BYTES": "10"}, "max_frame_bytes"),
    ({"TIDINGS_MAX_OUTGOING_BYTES": "1"}, "max_outgoing_bytes"),
    ({"TIDINGS_GROUP_COMMIT": "maybe"}, "group_commit"),
    ({"TIDINGS_JWT_ALGORITHMS": "RS256"}, "jwt_algorithms"),
    ({"TIDINGS_JWT_SECRET": ""}, "jwt_secret"),
    ({"TIDINGS_NAMESPACES__ROOM__PUBLISH": "everybody"}, "namespaces.room.publish"),
    ({"TIDINGS_NAMESPACES__ROOM__SUBSCRIBE": "nobody"}, "namespaces.room.subscribe"),
    ({"TIDINGS_NAMESPACES__ROOM__HISTORY_SIZE": "-5"}, "namespaces.room.history_size"),
    ({"TIDINGS_NAMESPACES__ROOM__HISTORY_SIZE": "lots"}, "namespaces.room.history_size"),
    ({"TIDINGS_NAMESPACES__VOICE__PRESENCE": "perhaps"}, "namespaces.voice.presence"),
    ({"TIDINGS_NAMESPACES__ROOM__COLOUR": "blue"}, "namespaces.room.colour"),
])
def test_bad_values_name_the_setting(monkeypatch, env, setting):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert setting in str(err.value)


@pytest.mark.parametrize("text, setting", [
    ('port = "high"\n', "port"),
    ("cluster_ttl = 0\n", "cluster_ttl"),
    ("[namespaces.room]\nhistory_size = 2000000\n", "namespaces.room.history_size"),
    ("[namespaces.room]\nhistory_ttl = -1\n", "namespaces.room.history_ttl"),
    ("namespaces = 5\n", "namespaces"),
])
def test_bad_file_values_name_the_setting(tmp_path, text, setting):
    with pytest.raises(ConfigError) as err:
        load_settings(_toml(tmp_path, text))
    assert setting in str(err.value)


def test_bad_keyword_override_names_the_setting():
    with pytest.raises(ConfigError, match="port"):
        load_settings(port="abc")


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found") as err:
        load_settings(tmp_path / "absent.toml")
    assert "absent.toml" in str(err.value)


def test_a_directory_is_no_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path)


def test_unknown_setting_in_the_file_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="colour"):
        load_settings(_toml(tmp_path, "colour = 'blue'\n"))


def test_unknown_namespace_option_in_the_file_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="namespaces.room.colour"):
        load_settings(_toml(tmp_path, "[namespaces.room]\ncolour = 'blue'\n"))


def test_unknown_keyword_setting_is_rejected():
    with pytest.raises(ConfigError, match="colour"):
        load_settings(colour="blue")


def test_bad_toml_is_an_error_naming_the_file(tmp_path):
    config = _toml(tmp_path, "port = = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert str(config) in str(err.value)


def test_a_file_that_is_not_utf8_is_an_error(tmp_path):
    config = tmp_path / "latin1.toml"
    config.write_bytes(b'node_name = "caf\xe9"\n')
    with pytest.raises(ConfigError):
        load_settings(config)


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.10", False), ("example.com", False),
])
def test_loopback_only_says_whether_the_host_is_loopback(host, loopback):
    assert load_settings(host=host).loopback_only is loopback


def test_empty_secrets_are_refused():
    for name in ("jwt_secret", "api_key"):
        with pytest.raises(ConfigError, match=name):
            load_settings(**{name: ""})


def test_voice_limits_come_from_nested_variables(monkeypatch):
    monkeypatch.setenv("TIDINGS_VOICE__FRAMES_PER_SECOND", "60")
    settings = load_settings(None)
    assert settings.voice.frames_per_second == 60
    assert settings.voice.max_frame_bytes == 4096
    assert settings.namespaces["voice"].binary and not settings.namespaces["room"].binary


def test_a_binary_namespace_that_keeps_history_is_refused():
    with pytest.raises(ConfigError, match="binary needs history_size = 0"):
        load_settings(None, namespaces={"talk": {"binary": True}})


# ---- security ---------------------------------------------------------------------------


def test_security_defaults():
    security = load_settings().security
    assert security.allowed_origins == []
    assert (security.max_connections, security.max_connections_per_address,
            security.max_connections_per_user) == (100_000, 100, 100)
    assert security.handshake_timeout == 10
    assert (security.command_rate, security.command_burst) == (100, 200)
    assert security.jwt_audience is None and security.jwt_issuer is None
    assert (security.revocation_ttl, security.max_revocations) == (86_400, 100_000)
    proxy = security.proxy
    assert (proxy.connect_url, proxy.subscribe_url, proxy.publish_url) == (None, None, None)
    assert (proxy.timeout, proxy.cache_ttl, proxy.cache_size) == (1, 10, 10_000)
    assert "Cookie" in proxy.headers and "Authorization" in proxy.headers


def test_security_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("TIDINGS_SECURITY__MAX_CONNECTIONS_PER_USER", "5")
    monkeypatch.setenv("TIDINGS_SECURITY__ALLOWED_ORIGINS", '["https://app.example.com"]')
    monkeypatch.setenv("TIDINGS_SECURITY__PROXY__TIMEOUT", "2.5")
    security = load_settings().security
    assert security.max_connections_per_user == 5
    assert security.allowed_origins == ["https://app.example.com"]
    assert security.proxy.timeout == 2.5


def test_security_settings_from_the_file(tmp_path):
    settings = load_settings(_toml(tmp_path, '[security]\ncommand_rate = 10\n'
                                              '[security.proxy]\n'
                                              'subscribe_url = "http://127.0.0.1:3000/s"\n'))
    assert settings.security.command_rate == 10
    assert settings.security.proxy.subscribe_url == "http://127.0.0.1:3000/s"


def test_a_connect_hook_counts_as_auth():
    assert load_settings(security={"proxy": {"connect_url": "http://b/c"}}).auth_enabled


@pytest.mark.parametrize("overrides, problem", [
    ({"namespaces": {"vip": {"subscribe": "proxy"}}}, "security.proxy.subscribe_url"),
    ({"namespaces": {"vip": {"publish": "proxy"}}}, "security.proxy.publish_url"),
    ({"namespaces": {"vip": {"subscribe": "token"}},
      "security": {"proxy": {"connect_url": "http://b/c"}}}, "jwt_secret"),
    ({"security": {"command_burst": 0}}, "security.command_burst"),
    ({"security": {"handshake_timeout": 0}}, "security.handshake_timeout"),
    ({"security": {"max_connections": -1}}, "security.max_connections"),
    ({"security": {"colour": "red"}}, "security.colour"),
])
def test_security_settings_that_cannot_work_are_errors(overrides, problem):
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.")):
        load_settings(**overrides)
def test_message_center_settings_from_the_environment_and_bad_ingest_urls(monkeypatch):
    from tidings.config import ConfigError, load_settings

    monkeypatch.setenv("TIDINGS_MESSAGE_CENTER__INGEST",
                       '{"orders":{"url":"kafka://127.0.0.1:9092","queue":"order-events"}}')
    monkeypatch.setenv("TIDINGS_MESSAGE_CENTER__SOURCES__BILLING__MAX_AGE", "60")
    center = load_settings(None).message_center
    orders = center.ingest["orders"]
    assert (orders.kind, orders.group, orders.max_in_flight) == ("kafka", "tidings", 256)
    assert orders.dead_letter_name == "order-events.dead-letter"
    assert center.retention_of("billing").max_age == 60
    assert center.retention_of("other").max_messages == 1000
    monkeypatch.setenv("TIDINGS_MESSAGE_CENTER__INGEST", '{"x":{"url":"ftp://h","queue":"q"}}')
    with pytest.raises(ConfigError, match="unknown scheme 'ftp'"):
        load_settings(None)
    monkeypatch.setenv("TIDINGS_MESSAGE_CENTER__INGEST",
                       '{"x":{"url":"redis://h","queue":"q","max_in_flight":0}}')
    with pytest.raises(ConfigError, match="max_in_flight"):
        load_settings(None)
