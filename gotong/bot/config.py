"""Configuration: a TOML file, overridden by GOTONG_<SECTION>__<KEY> environment variables.

Loaded once at start-up, validated into frozen dataclasses and passed down. A bad value
stops start-up with a `ConfigError` that names the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from gotong.models.area import UnknownProvince, find_province

ENV_PREFIX = "GOTONG_"
LANGUAGES = ("id", "en")
DEFAULT_CONFIG_FILE = "config.toml"

_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


# When staff hear of news that concerns them: at once, or in their digest.
STAFF_NEWS_TIMING = ("now", "digest")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///data/gotong.sqlite3"
    echo: bool = False
    # PostgreSQL connections a process keeps open (SQLite has one): enough for its chats
    # handled at once, its webhooks and its dispatcher, so that none is opened and closed
    # per burst. Every process keeps this many: mind the server's max_connections.
    pool_size: int = 20


@dataclass(frozen=True)
class TelegramConfig:
    token: str = ""
    api_base_url: str = "https://api.telegram.org/bot"
    api_file_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_secret: str = ""
    # Updates of one chat are handled in order; this many chats at once.
    max_concurrent_chats: int = 16
    # Seconds to wait for Telegram's answer to a message; one that gets none may have
    # arrived: it is sent once more, waiting three times as long, and then left.
    answer_timeout_seconds: float = 5.0
    # Telegram's flood limits, which the dispatcher keeps to: messages a second in all,
    # a second to one person, and a minute to one group.
    messages_per_second: float = 30.0
    chat_messages_per_second: float = 1.0
    group_messages_per_minute: float = 20.0


@dataclass(frozen=True)
class WhatsAppConfig:
    # The WhatsApp Cloud API number; empty: no WhatsApp channel.
    phone_number_id: str = ""
    access_token: str = ""
    # Signs every webhook call (X-Hub-Signature-256); and the token Meta echoes when it
    # verifies the webhook URL.
    app_secret: str = ""
    verify_token: str = ""
    api_base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    # The WhatsApp Business Account that owns the number and its templates, for
    # `gotong whatsapp check`; empty: the templates are not checked.
    business_account_id: str = ""
    webhook_path: str = "/whatsapp/webhook"
    # The number's throughput, and messages a second to one person.
    messages_per_second: float = 80.0
    chat_messages_per_second: float = 1.0
    # Chats whose messages one process handles at once (each chat in order).
    max_concurrent_chats: int = 16
    # Seconds to wait for the Graph API's answer to a message (as for Telegram).
    answer_timeout_seconds: float = 10.0
    # Approved templates for news outside the 24-hour window, as "catalog key=template
    # name" (each with one body parameter, the text of the news), in every language of
    # the catalog; and the generic one ("you have an update, reply to see it").
    templates: tuple[str, ...] = ()
    fallback_template: str = "gotong_update"

    @property
    def enabled(self) -> bool:
        return bool(self.phone_number_id)


# Names of this machine: a page served from one is ours, whatever its port.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # The address people reach this server at (https://aid.example.org), for the
    # dashboard sign-in links sent in chat; empty: http://<host>:<port>.
    public_url: str = ""
    # The playground (four phone screens acting as anyone): "auto" serves it only when no
    # chat channel is configured; "on" and "off" decide outright.
    playground: str = "auto"
    # A dashboard sign-in link works once, within this many minutes.
    link_minutes: int = 10
    # A dashboard session ends this long after sign-in, or after this long unused.
    session_hours: int = 12
    idle_minutes: int = 60
    # The public transparency page refreshes its figures this often.
    public_refresh_seconds: int = 30
    # Host names this server also answers for, besides public_url's, web.host and
    # loopback (a load balancer's health check by address, say); any other is refused.
    allowed_hosts: tuple[str, ...] = ()
    # Connections open at once, and how long a client may take to send a request's
    # headers (and, once idle, the next request's) before it is disconnected.
    max_connections: int = 1000
    header_timeout_seconds: int = 10
    # How long a client may leave our answer untaken (not reading it) before it is
    # disconnected.
    write_timeout_seconds: int = 30

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def own_origin(self, origin: str) -> bool:
        """Whether a browser's Origin is one of our pages: the public address, or loopback
        on any port (trying it out locally). Never the Host a request names, which a site
        rebinding its DNS name to this server controls; its pages keep their own origin."""
        try:
            parts = urlsplit(origin)
            name = parts.hostname
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" and the like
        public = urlsplit(self.base_url)
        return name in LOOPBACK_NAMES or (parts.scheme, parts.netloc.lower()) == (
            public.scheme, public.netloc.lower())


@dataclass(frozen=True)
class I18nConfig:
    default_language: str = "id"
    timezone: str = "Asia/Jakarta"


@dataclass(frozen=True)
class PrivacyConfig:
    # Key of the HMAC that stores a NIK without keeping it in clear.
    nik_hash_key: str = ""
    # The personal data of a request closed (delivered, cancelled, rejected), or of a
    # pledge cancelled or wholly delivered, this many days ago is erased; its counts stay.
    # A year lets households, donors and staff look back at a season of aid, and settle
    # what comes up after it.
    retention_days: int = 365


@dataclass(frozen=True)
class AreasConfig:
    # Provinces whose kota/kabupaten, kecamatan and kelurahan people may choose.
    provinces: tuple[str, ...] = ("DKI Jakarta",)


@dataclass(frozen=True)
class DialogsConfig:
    # After this long away, the next message greets the person and repeats the question
    # instead of being taken as the answer to it.
    resume_after_minutes: int = 60
    max_invalid_attempts: int = 3
    max_text_length: int = 1000
    page_size: int = 8


@dataclass(frozen=True)
class RequestsConfig:
    # A request is "recent" for duplicate checks this many days after it closed.
    duplicate_window_days: int = 90


@dataclass(frozen=True)
class AidConfig:
    # A household served by any aggregator is not proposed again for this many days.
    cooldown_days: int = 14
    # Households proposed at once by /allocate.
    allocation_size: int = 10
    # Failed deliveries after which a request goes back to the queue (and its stock
    # back into stock).
    max_delivery_failures: int = 3


@dataclass(frozen=True)
class VolunteerConfig:
    # Deliveries a volunteer may have under way at once (and never more than the
    # packages they said they carry): one who takes a whole area's tasks would read every
    # household's details.
    max_open_tasks: int = 3
    # Hours for which a task the volunteer reported failed after picking it up (having
    # read the household's name, phone and address) still counts as one of their open
    # tasks: failing instead of delivering must not free room to collect more.
    failed_hold_hours: int = 24


@dataclass(frozen=True)
class SupportConfig:
    # A support conversation nobody has taken this many minutes after the person asked
    # for someone alerts all the aggregator's staff.
    answer_within_minutes: int = 30
    # The messages of support conversations (both ways) are forgotten after this many
    # days.
    keep_days: int = 30


@dataclass(frozen=True)
class ProxyConfig:
    # Households a proxy may have registered and still being helped at once: an RT head
    # knows a few dozen households; more points at a mistake or at abuse.
    max_households: int = 30
    # A number that said "no, not us" to a household a proxy registered is not asked
    # again, by any proxy, for this many days; then the refusal is forgotten.
    declined_days: int = 30
    # Questions one number may get in a day, from all proxies together: a number typed
    # again and again must not become a way to message someone without end.
    max_questions_per_day: int = 3


@dataclass(frozen=True)
class PublicConfig:
    # Counts of households below this are shown as "fewer than" it on the public page and
    # its JSON: a count of 1 in a kelurahan, or on one day, points at one household.
    min_count: int = 5


@dataclass(frozen=True)
class NotificationsConfig:
    # A message that keeps failing (network, server errors) is given up after this many
    # attempts, retried after about retry_base_seconds, doubling up to retry_max_seconds.
    max_attempts: int = 8
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    # Rows written by other processes (a broadcast) are found within this time.
    poll_seconds: float = 2.0
    # A message being sent by a process that died is sent again after this long.
    lease_seconds: float = 60.0
    # An unfinished registration gets one reminder after this long.
    reminder_after_hours: float = 24.0
    # Sent, failed and skipped messages are forgotten after this many days.
    keep_days: int = 30
    # News that comes often (a donor's pledge progress, new requests for staff) is sent at
    # most once per this many minutes per person and topic.
    digest_minutes: float = 60.0
    # News for a person on both apps (the same verified phone) goes to the app they used
    # last ("last_used"), or to "telegram" or "whatsapp" when that one reaches them.
    linked_delivery: str = "last_used"
    # A message still waiting this long after it was written (queued, retried, or kept
    # for a person outside WhatsApp's 24 hours) is listed to staff as not reached.
    stuck_after_minutes: int = 30
    # Staff hear of a new pledge to their aggregator (brought to the posko, or to be
    # picked up) at once ("now"), or in their digest of that topic ("digest").
    staff_new_pledge: str = "now"


@dataclass(frozen=True)
class InboundConfig:
    # A process that stops while handling an update (killed, paused) holds its chat for at
    # most this long; then another process (or this one, restarted) takes it over.
    lease_seconds: float = 60.0
    # An update that keeps failing for a reason other than the database is set aside after
    # this many attempts, retried after about retry_base_seconds, doubling up to
    # retry_max_seconds; a database failure is retried until the database is back.
    max_attempts: int = 5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    # Updates stored by other processes (webhooks that reached them) are looked for this
    # often when this process has room for more chats.
    poll_seconds: float = 1.0
    # Updates handled, recorded or set aside are forgotten after this many days: the
    # window in which a platform's redelivery of one is still recognised (WhatsApp retries
    # for up to 7 days, Telegram keeps an update for 24 hours).
    keep_days: int = 7


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    # "text": a line per event; "json": one JSON object a line, for a log collector.
    format: str = "text"


@dataclass(frozen=True)
class MetricsConfig:
    # Where /metrics is served (Prometheus' text format), apart from the public web
    # server; port 0: not served. Each process needs a port of its own on one machine.
    host: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    whatsapp: WhatsAppConfig = field(default_factory=WhatsAppConfig)
    web: WebConfig = field(default_factory=WebConfig)
    i18n: I18nConfig = field(default_factory=I18nConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    areas: AreasConfig = field(default_factory=AreasConfig)
    dialogs: DialogsConfig = field(default_factory=DialogsConfig)
    requests: RequestsConfig = field(default_factory=RequestsConfig)
    aid: AidConfig = field(default_factory=AidConfig)
    volunteer: VolunteerConfig = field(default_factory=VolunteerConfig)
    support: SupportConfig = field(default_factory=SupportConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    public: PublicConfig = field(default_factory=PublicConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    inbound: InboundConfig = field(default_factory=InboundConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @property
    def nik_key(self) -> bytes:
        return self.privacy.nik_hash_key.encode()

    @property
    def has_chat_channel(self) -> bool:
        return bool(self.telegram.token) or self.whatsapp.enabled

    @property
    def playground_on(self) -> bool:
        """Whether to serve the playground, where anyone can act as anyone."""
        if self.web.playground == "auto":
            return not self.has_chat_channel
        return self.web.playground == "on"


_SECTION_TYPES: dict[str, type[Any]] = {
    "database": DatabaseConfig, "telegram": TelegramConfig, "whatsapp": WhatsAppConfig,
    "web": WebConfig,
    "i18n": I18nConfig, "privacy": PrivacyConfig, "areas": AreasConfig,
    "dialogs": DialogsConfig, "requests": RequestsConfig, "aid": AidConfig,
    "volunteer": VolunteerConfig, "support": SupportConfig, "proxy": ProxyConfig,
    "public": PublicConfig,
    "notifications": NotificationsConfig, "inbound": InboundConfig, "logging": LoggingConfig,
    "metrics": MetricsConfig,
}


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply environment overrides and validate."""
    environ = os.environ if environ is None else environ
    if path is None:
        env_path = environ.get(ENV_PREFIX + "CONFIG")
        if env_path:
            path = Path(env_path)
        elif Path(DEFAULT_CONFIG_FILE).exists():
            path = Path(DEFAULT_CONFIG_FILE)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    _apply_environment(raw, environ)
    config = _build(raw)
    validate(config)
    return config


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{section} must be a table")
        raw[section][key] = value


def _build(raw: Mapping[str, Any]) -> Config:
    sections: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in _SECTION_TYPES:
            raise ConfigError(f"unknown config section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        sections[section] = _build_section(section, _SECTION_TYPES[section], values)
    return Config(**sections)


def _build_section(section: str, cls: type[Any], values: Mapping[str, Any]) -> Any:
    defaults = cls()
    kwargs: dict[str, Any] = {}
    known = {f.name for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown config key {section}.{key}")
        kwargs[key] = _coerce(f"{section}.{key}", getattr(defaults, key), value)
    return cls(**kwargs)


def _coerce(name: str, default: Any, value: Any) -> Any:
    """Coerce TOML or environment values to the type of the default."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if isinstance(default, int):
        # TOML floats and booleans are not whole numbers, whatever int() makes of them.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
        raise ConfigError(f"{name} must be a whole number, not {value!r}")
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name} must be a number, not {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{name} must be a list of strings")
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, not {value!r}")
    return value


def _validate_web(web: WebConfig) -> None:
    if not 0 < web.port < 65536:
        raise ConfigError("web.port must be between 1 and 65535")
    if web.public_url and not web.public_url.startswith(("http://", "https://")):
        raise ConfigError("web.public_url must be an http(s) URL")
    if web.playground not in ("auto", "on", "off"):
        raise ConfigError("web.playground must be 'auto', 'on' or 'off'")
    for key in ("link_minutes", "session_hours", "idle_minutes", "public_refresh_seconds",
                "max_connections", "header_timeout_seconds", "write_timeout_seconds"):
        if getattr(web, key) < 1:
            raise ConfigError(f"web.{key} must be at least 1")


def validate(config: Config) -> None:
    """Check values that types alone cannot; raise ConfigError naming the key."""
    url = config.database.url
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            "database.url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    tg = config.telegram
    if tg.mode not in ("polling", "webhook"):
        raise ConfigError("telegram.mode must be 'polling' or 'webhook'")
    if tg.token and not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", tg.token):
        raise ConfigError("telegram.token does not look like a bot token (123456:ABC-...)")
    if not tg.api_base_url.startswith(("http://", "https://")):
        raise ConfigError("telegram.api_base_url must be an http(s) URL")
    if tg.mode == "webhook" and tg.token:
        if not tg.webhook_url.startswith("https://"):
            raise ConfigError("telegram.webhook_url must be an https:// URL in webhook mode")
        if not _SECRET_TOKEN.fullmatch(tg.webhook_secret):
            raise ConfigError(
                "telegram.webhook_secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
    if config.database.pool_size < 2:
        raise ConfigError("database.pool_size must be at least 2")
    if tg.max_concurrent_chats < 1:
        raise ConfigError("telegram.max_concurrent_chats must be at least 1")
    if config.whatsapp.max_concurrent_chats < 1:
        raise ConfigError("whatsapp.max_concurrent_chats must be at least 1")
    for app in ("telegram", "whatsapp"):
        if getattr(config, app).answer_timeout_seconds <= 0:
            raise ConfigError(f"{app}.answer_timeout_seconds must be positive")
    inbound = config.inbound
    for key in ("lease_seconds", "retry_base_seconds", "retry_max_seconds", "poll_seconds"):
        if getattr(inbound, key) <= 0:
            raise ConfigError(f"inbound.{key} must be positive")
    if inbound.max_attempts < 1:
        raise ConfigError("inbound.max_attempts must be at least 1")
    if inbound.keep_days < 1:
        raise ConfigError("inbound.keep_days must be at least 1")
    _validate_whatsapp(config.whatsapp)
    _validate_web(config.web)
    if config.i18n.default_language not in LANGUAGES:
        raise ConfigError(f"i18n.default_language must be one of {', '.join(LANGUAGES)}")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(config.i18n.timezone)
    except Exception as exc:
        raise ConfigError(f"i18n.timezone {config.i18n.timezone!r} is not a time zone") from exc
    if len(config.privacy.nik_hash_key) < 32:
        raise ConfigError(
            "privacy.nik_hash_key must be a secret of at least 32 characters "
            "(run `gotong init` to generate one)"
        )
    if not 1 <= config.privacy.retention_days <= 3650:
        raise ConfigError("privacy.retention_days must be between 1 and 3650")
    if not config.areas.provinces:
        raise ConfigError("areas.provinces must name at least one province")
    for province in config.areas.provinces:
        try:
            find_province(province)
        except UnknownProvince:
            raise ConfigError(
                f"areas.provinces: {province!r} is not a province of Indonesia "
                "(give its name, e.g. \"DKI Jakarta\", or its code, e.g. \"31\")"
            ) from None
    d = config.dialogs
    if d.resume_after_minutes < 1:
        raise ConfigError("dialogs.resume_after_minutes must be at least 1")
    if d.max_invalid_attempts < 1:
        raise ConfigError("dialogs.max_invalid_attempts must be at least 1")
    if not 50 <= d.max_text_length <= 4000:
        raise ConfigError("dialogs.max_text_length must be between 50 and 4000")
    if not 3 <= d.page_size <= 20:
        raise ConfigError("dialogs.page_size must be between 3 and 20")
    if config.requests.duplicate_window_days < 0:
        raise ConfigError("requests.duplicate_window_days must not be negative")
    for key in ("messages_per_second", "chat_messages_per_second",
                "group_messages_per_minute"):
        if not 0 < getattr(tg, key) <= 10_000:
            raise ConfigError(f"telegram.{key} must be above 0 (and at most 10000)")
    n = config.notifications
    if n.max_attempts < 1:
        raise ConfigError("notifications.max_attempts must be at least 1")
    if config.aid.cooldown_days < 0:
        raise ConfigError("aid.cooldown_days must not be negative")
    if not 1 <= config.aid.allocation_size <= 50:
        raise ConfigError("aid.allocation_size must be between 1 and 50")
    if config.aid.max_delivery_failures < 1:
        raise ConfigError("aid.max_delivery_failures must be at least 1")
    if not 1 <= config.volunteer.max_open_tasks <= 50:
        raise ConfigError("volunteer.max_open_tasks must be between 1 and 50")
    if not 1 <= config.support.answer_within_minutes <= 10_080:
        raise ConfigError("support.answer_within_minutes must be between 1 and 10080")
    if config.support.keep_days < 1:
        raise ConfigError("support.keep_days must be at least 1")
    if not 0 <= config.volunteer.failed_hold_hours <= 24 * 30:
        raise ConfigError("volunteer.failed_hold_hours must be between 0 and 720")
    if not 1 <= config.proxy.max_households <= 1000:
        raise ConfigError("proxy.max_households must be between 1 and 1000")
    if not 1 <= config.proxy.declined_days <= 3650:
        raise ConfigError("proxy.declined_days must be between 1 and 3650")
    if not 1 <= config.proxy.max_questions_per_day <= 100:
        raise ConfigError("proxy.max_questions_per_day must be between 1 and 100")
    if not 1 <= config.public.min_count <= 100:
        raise ConfigError("public.min_count must be between 1 and 100 (1 hides nothing)")
    for key in ("retry_base_seconds", "retry_max_seconds", "poll_seconds", "lease_seconds",
                "reminder_after_hours", "digest_minutes"):
        if not 0 < getattr(n, key) < 1e7:
            raise ConfigError(f"notifications.{key} must be above 0")
    if n.staff_new_pledge not in STAFF_NEWS_TIMING:
        raise ConfigError("notifications.staff_new_pledge must be 'now' or 'digest'")
    if n.linked_delivery not in ("last_used", "telegram", "whatsapp"):
        raise ConfigError("notifications.linked_delivery must be last_used, telegram or "
                          "whatsapp")
    if n.keep_days < 1:
        raise ConfigError("notifications.keep_days must be at least 1")
    if n.stuck_after_minutes < 1:
        raise ConfigError("notifications.stuck_after_minutes must be at least 1")
    if n.retry_max_seconds < n.retry_base_seconds:
        raise ConfigError("notifications.retry_max_seconds must not be below "
                          "notifications.retry_base_seconds")
    if config.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("logging.level must be DEBUG, INFO, WARNING or ERROR")
    if config.logging.format not in ("text", "json"):
        raise ConfigError("logging.format must be 'text' or 'json'")
    if not 0 <= config.metrics.port < 65536:
        raise ConfigError("metrics.port must be between 0 (off) and 65535")


_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")


def _validate_whatsapp(wa: WhatsAppConfig) -> None:
    if not wa.enabled:
        return
    if not wa.phone_number_id.isdigit():
        raise ConfigError("whatsapp.phone_number_id must be the number's id (digits)")
    for key in ("access_token", "app_secret", "verify_token"):
        if not getattr(wa, key):
            raise ConfigError(f"whatsapp.{key} must be set when WhatsApp is on")
    if not wa.api_base_url.startswith(("http://", "https://")):
        raise ConfigError("whatsapp.api_base_url must be an http(s) URL")
    if wa.business_account_id and not re.fullmatch(r"[0-9]{1,30}", wa.business_account_id):
        raise ConfigError("whatsapp.business_account_id must be the account's id (digits)")
    if not re.fullmatch(r"v\d+\.\d+", wa.api_version):
        raise ConfigError("whatsapp.api_version must look like v21.0")
    if not wa.webhook_path.startswith("/"):
        raise ConfigError("whatsapp.webhook_path must start with /")
    for key in ("messages_per_second", "chat_messages_per_second"):
        if not 0 < getattr(wa, key) <= 10_000:
            raise ConfigError(f"whatsapp.{key} must be above 0 (and at most 10000)")
    if not _TEMPLATE_NAME.fullmatch(wa.fallback_template):
        raise ConfigError("whatsapp.fallback_template must be a template name "
                          "(lower case letters, digits and _)")
    for pair in wa.templates:
        key, separator, name = pair.partition("=")
        if not separator or not key.strip().startswith("notice.") \
                or not _TEMPLATE_NAME.fullmatch(name.strip()):
            raise ConfigError(f"whatsapp.templates: {pair!r} must be "
                              "\"notice.<kind>=<template name>\"")
