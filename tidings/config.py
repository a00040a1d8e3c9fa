"""Settings: one object, read from a TOML file and `TIDINGS_*` environment variables.

Environment variables win over the file, so one file can serve a whole cluster while each
node sets its own `TIDINGS_PORT` and `TIDINGS_NODE_NAME`. Nested values use `__`
(`TIDINGS_NAMESPACES__ROOM__HISTORY_SIZE=500`).
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ConfigError(Exception):
    """Settings that cannot work; the message names the setting and the problem."""


class Namespace(BaseModel):
    """Options shared by every channel whose name starts with `<namespace>:`."""

    model_config = ConfigDict(extra="forbid")

    history_size: int = Field(1000, ge=0, le=1_000_000)
    """Publications kept per channel; 0 makes the namespace ephemeral (nothing stored)."""
    history_ttl: float = Field(0, ge=0)
    """Seconds a publication is kept; 0 keeps it until history_size pushes it out."""
    presence: bool = False
    join_leave: bool = False
    publish: Literal["members", "anyone", "server"] = "members"
    """Who may publish from a client: subscribers only, any connected user, or only the server API."""
    subscribe: Literal["anyone", "owner", "server"] = "anyone"
    """Who may subscribe: any user, only the user the channel is named after, or nobody explicitly."""
    recovery_max: int = Field(10_000, ge=0)
    """Most publications one recovery returns; a client that missed more must reload history."""

    @property
    def stored(self) -> bool:
        return self.history_size > 0


class SourceRetention(BaseModel):
    """How much of one source's messages each user's inbox keeps."""

    model_config = ConfigDict(extra="forbid")

    max_messages: int = Field(1000, ge=1, le=1_000_000)
    """Per user and source; older messages are dropped as new ones come."""
    max_age: float = Field(0, ge=0)
    """Seconds a message stays in the inbox; 0 keeps it until max_messages pushes it out."""


class IngestSource(BaseModel):
    """One queue a backend puts notifications on; the URL's scheme names the system."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """amqp://, kafka://host:9092[,host2:9092], redis://, or nats://"""
    queue: str = Field(min_length=1, max_length=200)
    """The RabbitMQ queue, Kafka topic, Redis stream key or JetStream subject."""
    group: str = Field("tidings", min_length=1, max_length=200)
    """Kafka consumer group, Redis consumer group or JetStream durable consumer name."""
    dead_letter: str | None = Field(None, min_length=1, max_length=200)
    """Where poison messages go (AMQP exchange, Kafka topic, Redis stream, JetStream
    subject); default `<queue>.dead-letter`."""
    stream: str | None = Field(None, min_length=1, max_length=200)
    """JetStream only: the stream holding `queue` (default: made from the subject)."""
    max_in_flight: int = Field(256, ge=1, le=10_000)
    """Messages taken from the queue but not yet acknowledged, at most (backpressure)."""
    redeliver_after: float = Field(30.0, gt=0)
    """Redis and JetStream: seconds before a message taken by a node that died is handed
    to another (Redis XAUTOCLAIM idle time, JetStream ack wait)."""

    @property
    def kind(self) -> str:
        return self.url.split(":", 1)[0].lower()

    @property
    def dead_letter_name(self) -> str:
        return self.dead_letter or f"{self.queue}.dead-letter"


class MessageCenter(BaseModel):
    """Ingest from backends' queues, idempotency of publishes, and the inbox's retention."""

    model_config = ConfigDict(extra="forbid")

    ingest: dict[str, IngestSource] = Field(default_factory=dict)
    """Named ingest sources; every node consumes each one as a competing consumer."""
    idempotency_window: float = Field(86400.0, gt=0)
    """Seconds an idempotency key (or a notification's source and id) is remembered."""
    max_notification_bytes: int = Field(65536, ge=256, le=16 * 1024 * 1024)
    """A larger queued notification is dead-lettered (reason `too_large`)."""
    max_recipients: int = Field(1000, ge=1, le=100_000)
    """Users one notification may name; more is dead-lettered (`bad_notification`)."""
    retention: SourceRetention = Field(default_factory=SourceRetention)
    """Inbox retention for every source not named in `sources`."""
    sources: dict[str, SourceRetention] = Field(default_factory=dict)
    """Inbox retention per source (the `source` of the messages), e.g. `sources.billing`."""

    def retention_of(self, source: str) -> SourceRetention:
        return self.sources.get(source, self.retention)

    @model_validator(mode="after")
    def _known_systems(self) -> "MessageCenter":
        for name, source in self.ingest.items():
            if source.kind not in INGEST_SCHEMES:
                raise ValueError(
                    f"ingest.{name}.url: unknown scheme {source.kind!r}: use "
                    "amqp://, kafka://, redis:// or nats://")
        return self


INGEST_SCHEMES = ("amqp", "amqps", "kafka", "redis", "rediss", "nats", "tls")


DEFAULT_NAMESPACES: dict[str, dict] = {
    "user": {"history_size": 1000, "subscribe": "owner", "publish": "anyone"},
    "room": {"history_size": 1000, "presence": True, "join_leave": True},
    "broadcast": {"history_size": 100, "publish": "server", "subscribe": "server"},
    "voice": {"history_size": 0, "presence": True, "join_leave": True},
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIDINGS_", env_nested_delimiter="__", extra="forbid", toml_file=None
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    node_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{_short_id()}")
    broker: str = "memory://"
    store: str = "sqlite:///tidings.db"
    group_commit: bool = True

    jwt_secret: str | None = None
    """HS256 secret; enables JWT auth."""
    jwt_public_key: str | None = None
    """PEM text, or a path to a PEM file, of an RS256/ES256 public key; enables JWT auth."""
    jwt_algorithms: list[str] = Field(default_factory=list)
    """Accepted algorithms; defaults to HS256 with a secret, RS256 and ES256 with a key."""
    api_key: str | None = None
    """Key for the server API; without one only loopback callers may use it."""

    ping_interval: float = Field(25.0, gt=0)
    pong_timeout: float = Field(10.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    max_frame_bytes: int = Field(65536, ge=1024)
    max_outgoing_bytes: int = Field(4 * 1024 * 1024, ge=65536)
    """A session whose unsent output exceeds this is closed as a slow consumer."""
    cluster_ttl: float = Field(15.0, gt=0)
    """Seconds after its last heartbeat that a node and its presence entries expire."""
    shutdown_grace: float = Field(5.0, ge=0)

    namespaces: dict[str, Namespace] = Field(default_factory=dict)
    message_center: MessageCenter = Field(default_factory=MessageCenter)

    @model_validator(mode="before")
    @classmethod
    def _merge_namespace_defaults(cls, values: dict) -> dict:
        """A namespace set in the file or environment changes only the options it names."""
        given = values.get("namespaces") or {}
        if not isinstance(given, dict):
            return values
        merged = {name: dict(options) for name, options in DEFAULT_NAMESPACES.items()}
        for name, options in given.items():
            if isinstance(options, dict):
                merged.setdefault(name, {}).update(options)
            else:
                merged[name] = options  # let validation report it
        return {**values, "namespaces": merged}

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        for name in ("jwt_secret", "api_key"):
            if getattr(self, name) == "":
                raise ValueError(f"{name} is empty: give a value or leave it unset")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        toml_file = settings_cls.model_config.get("toml_file")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file))
        return tuple(sources)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.jwt_secret or self.jwt_public_key)

    @property
    def loopback_only(self) -> bool:
        return is_loopback_host(self.host)


def _short_id() -> str:
    import secrets

    return secrets.token_hex(3)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(config_file: str | Path | None = None, **overrides) -> Settings:
    """Read settings; every problem is a ConfigError naming the setting at fault."""
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file not found: {config_file}")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=str(config_file) if config_file else None)

    try:
        return FileSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    except ValueError as exc:  # a TOML syntax error
        raise ConfigError(f"cannot read {config_file}: {exc}") from None
