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
    publish: Literal["members", "anyone", "server", "proxy"] = "members"
    """Who may publish from a client: subscribers only, any connected user, only the server
    API, or whoever the application's backend allows (the publish proxy hook)."""
    subscribe: Literal["anyone", "owner", "server", "token", "proxy"] = "anyone"
    """Who may subscribe: any user, only the user the channel is named after, nobody
    explicitly, the holder of a subscription token, or whoever the backend allows."""
    recovery_max: int = Field(10_000, ge=0)
    """Most publications one recovery returns; a client that missed more must reload history."""
    binary: bool = False
    """Members may send binary voice frames (docs/protocol.md); only for ephemeral namespaces."""

    @property
    def stored(self) -> bool:
        return self.history_size > 0

    @model_validator(mode="after")
    def _binary_is_ephemeral(self) -> "Namespace":
        if self.binary and self.stored:
            raise ValueError("binary needs history_size = 0: voice frames are never stored")
        return self


class VoiceSettings(BaseModel):
    """Limits of the voice relay (binary frames on namespaces with `binary = true`)."""

    model_config = ConfigDict(extra="forbid")

    max_frame_bytes: int = Field(4096, ge=64)
    """A voice frame, header included, must be at most this long, else error 130."""
    frames_per_second: float = Field(100, gt=0)
    """Voice frames one connection may send per second (a burst of one second's worth)."""
    listener_backlog_bytes: int = Field(65536, ge=0)
    """A listener with more unsent bytes than this misses voice frames instead of queueing them."""
    speaking_timeout: float = Field(0.3, gt=0)
    """Seconds without audio from a member before the node says they stopped speaking."""
    cluster_queue: int = Field(256, ge=1)
    """Voice frames waiting for the broker on their way to other nodes; when full, the
    oldest waiting frame is dropped (counted)."""
    roster_refresh: float = Field(5.0, gt=0)
    """Seconds a voice room's cluster-wide members (read from presence) are reused; a join
    or leave the node hears of makes it read them again at once."""


class Resilience(BaseModel):
    """How a node behaves when its store or broker is in trouble (docs/guarantees.md)."""

    model_config = ConfigDict(extra="forbid")

    publish_timeout: float = Field(5.0, gt=0)
    """Seconds a publish waits for its store commit before it answers 111 (not stored) or
    113 (outcome unknown: retry with the same idempotency key)."""
    store_stalled_after: float = Field(2.0, gt=0)
    """Seconds the oldest unfinished commit may wait before /health/ready reports the store
    stalled (503)."""
    loop_lag_interval: float = Field(0.25, gt=0)
    """Seconds between two event-loop lag samples (tidings_event_loop_lag_seconds)."""


class StompSettings(BaseModel):
    """STOMP at /stomp and SockJS at /sockjs (docs/stomp.md)."""

    model_config = ConfigDict(extra="forbid")

    heartbeat_send: float = Field(10.0, ge=0)
    """Seconds between the server's heart-beats it offers in CONNECTED; 0: none."""
    heartbeat_receive: float = Field(10.0, ge=0)
    """Seconds between client heart-beats the server asks for; 0: none."""
    heartbeat_tolerance: float = Field(2.0, ge=1)
    """A client silent for this many negotiated intervals is closed (4005)."""
    max_headers: int = Field(64, ge=8)
    max_header_bytes: int = Field(8192, ge=256)
    """Longest header line (name, colon and value) of a client frame."""
    max_unacked: int = Field(1000, ge=1)
    """Unacknowledged messages one `ack: client`/`client-individual` subscription may have."""
    max_transactions: int = Field(16, ge=1)
    """Open transactions per connection."""
    max_transaction_frames: int = Field(1000, ge=1)
    """Frames one transaction may hold until COMMIT."""
    sockjs_heartbeat: float = Field(25.0, gt=0)
    """Seconds of silence after which a SockJS receiving request gets an `h` frame."""
    sockjs_disconnect_delay: float = Field(5.0, gt=0)
    """Seconds a SockJS session over HTTP lives without a receiving request."""
    sockjs_streaming_limit: int = Field(131072, ge=4096)
    """Bytes one xhr-streaming response carries before the client is made to open another."""


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
    partitions: int = Field(4, ge=1, le=10_000)
    """Kafka only: partitions of the topic (and the dead-letter topic's) when Tidings
    creates a missing one; an existing topic is left as it is."""
    replication_factor: int = Field(1, ge=1, le=100)
    """Kafka only: replicas of each partition of a topic Tidings creates."""

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
    "voice": {"history_size": 0, "presence": True, "join_leave": True, "binary": True},
}


PROXY_HEADERS = ["Cookie", "Authorization", "Origin", "User-Agent", "X-Forwarded-For",
                 "X-Real-Ip", "X-Request-Id"]


class Proxy(BaseModel):
    """The application's backend, asked over HTTP who a client is and what it may do."""

    model_config = ConfigDict(extra="forbid")

    connect_url: str | None = None
    """Asked at `connect` without a token: the backend names the user (from cookies etc.)."""
    subscribe_url: str | None = None
    """Asked when a client subscribes to a channel of a `subscribe = "proxy"` namespace."""
    publish_url: str | None = None
    """Asked when a client publishes to a channel of a `publish = "proxy"` namespace."""
    timeout: float = Field(1.0, gt=0)
    """Seconds one hook call may take; a slower backend means error 111 for the client."""
    cache_ttl: float = Field(10.0, ge=0)
    """Seconds a subscribe or publish answer is reused for the same user and channel; 0: never."""
    cache_size: int = Field(10_000, ge=0)
    """Answers kept at most; the least recently used goes first."""
    headers: list[str] = Field(default_factory=lambda: list(PROXY_HEADERS))
    """Headers of the client's WebSocket handshake passed on to the backend."""


class Security(BaseModel):
    """Who may connect from where, how much one client may ask, and which tokens count."""

    model_config = ConfigDict(extra="forbid")

    allowed_origins: list[str] = Field(default_factory=list)
    """Browser origins (`https://app.example.com`) allowed besides the node's own; `*`: any."""
    max_connections: int = Field(100_000, ge=0)
    """WebSocket connections this node holds at most; 0: no cap."""
    max_connections_per_address: int = Field(100, ge=0)
    """Connections from one non-loopback IP address at most; 0: no cap."""
    max_connections_per_user: int = Field(100, ge=0)
    """Connections of one user on this node at most; 0: no cap."""
    handshake_timeout: float = Field(10.0, gt=0)
    """Seconds from opening a TCP connection to a complete HTTP request (and upgrade)."""
    command_rate: float = Field(100.0, gt=0)
    """Commands per second one connection may send, sustained."""
    command_burst: int = Field(200, ge=1)
    """Commands one connection may send at once, before command_rate applies."""
    jwt_audience: str | None = None
    """When set, every token must carry this `aud`."""
    jwt_issuer: str | None = None
    """When set, every token must carry this `iss`."""
    revocation_ttl: float = Field(86_400.0, gt=0)
    """Seconds a revoked `jti` stays revoked: at least the longest lifetime of your tokens."""
    max_revocations: int = Field(100_000, ge=1, le=1_000_000)
    """Revoked token ids held at once."""
    proxy: Proxy = Field(default_factory=Proxy)


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
    admin_token: str | None = Field(None, min_length=16)
    """The admin console's own token (`/admin`); without one the console is off."""

    ping_interval: float = Field(25.0, gt=0)
    pong_timeout: float = Field(10.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    max_frame_bytes: int = Field(65536, ge=1024)
    max_outgoing_bytes: int = Field(4 * 1024 * 1024, ge=65536)
    """A session whose unsent output exceeds this is closed as a slow consumer."""
    cluster_ttl: float = Field(15.0, gt=0)
    """Seconds after its last heartbeat that a node and its presence entries expire."""
    shutdown_grace: float = Field(5.0, ge=0)
    log_format: Literal["text", "json", "kv"] = "text"
    """Log lines for people (`text`), JSON lines (`json`) or logfmt key=value pairs (`kv`)."""

    namespaces: dict[str, Namespace] = Field(default_factory=dict)
    resilience: Resilience = Field(default_factory=Resilience)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    stomp: StompSettings = Field(default_factory=StompSettings)
    security: Security = Field(default_factory=Security)
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
        if self.admin_token is not None and self.admin_token in (self.api_key, self.jwt_secret):
            raise ValueError("admin_token must be a secret of its own, not the api_key or "
                             "jwt_secret")
        proxy = self.security.proxy
        for name, options in self.namespaces.items():
            if options.subscribe == "proxy" and not proxy.subscribe_url:
                raise ValueError(f"namespaces.{name}.subscribe is 'proxy': set "
                                 "security.proxy.subscribe_url")
            if options.publish == "proxy" and not proxy.publish_url:
                raise ValueError(f"namespaces.{name}.publish is 'proxy': set "
                                 "security.proxy.publish_url")
            if (options.subscribe == "token" and self.auth_enabled
                    and not (self.jwt_secret or self.jwt_public_key)):
                raise ValueError(f"namespaces.{name}.subscribe is 'token': set jwt_secret or "
                                 "jwt_public_key to verify subscription tokens")
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
        return bool(self.jwt_secret or self.jwt_public_key or self.security.proxy.connect_url)

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
