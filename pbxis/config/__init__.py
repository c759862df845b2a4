"""The TOML configuration, validated before anything listens or connects.

Every mistake is reported as one line that names the key and says what is expected
(``[ami].port: expected an integer from 1 to 65535, got "five"``), because the person
reading it is an operator at a console, not a Python developer. Unknown keys are
errors too: a misspelt ``grace_perod`` silently ignored is a production incident.

The schema is data (:data:`SCHEMA`), so the validator, the sample file and the
README's table of keys cannot drift apart: ``tests/test_config.py`` checks that the
sample names every key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pbxis.names import AGENT_HINT, AGENT_PATTERN, PBX_PATTERN, QUEUE_HINT, QUEUE_PATTERN

from ..webhooks.config import WebhookConfig, WebhookConfigError, parse_webhooks

__all__ = [
    "SAMPLE_PATH",
    "AMIConfig",
    "AgentsConfig",
    "Config",
    "ConfigError",
    "HTTPConfig",
    "NodeConfig",
    "OriginateConfig",
    "PbxConfig",
    "RedisConfig",
    "SimulatorConfig",
    "SupervisorsConfig",
    "TenantConfig",
    "Thresholds",
    "load_config",
    "parse_config",
]

SAMPLE_PATH = Path(__file__).with_name("sample.toml")


class ConfigError(Exception):
    """A configuration mistake; ``str()`` is the one line to show the operator."""


@dataclass(frozen=True)
class AMIConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    endpoint: str = ""
    username: str = "pbxis"
    secret: str = field(default="", repr=False)
    auth: Literal["md5", "plain"] = "md5"
    events: str = "on"
    action_timeout: float = 10.0
    connect_timeout: float = 10.0
    keepalive_interval: float = 20.0
    keepalive_timeout: float = 10.0
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    reconnect_reset_after: float = 30.0

    @property
    def client_endpoint(self) -> str:
        """A Twisted client endpoint string (``endpoint`` wins over host/port)."""
        if self.endpoint:
            return self.endpoint
        host = self.host.replace(":", r"\:")
        return f"tcp:host={host}:port={self.port}:timeout={int(self.connect_timeout) or 1}"


@dataclass(frozen=True)
class HTTPConfig:
    listen: str = "tcp:8080:interface=127.0.0.1"
    public_url: str = ""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    allowed_origins: tuple[str, ...] = ()
    metrics_public: bool = True
    allowed_hosts: tuple[str, ...] = ()
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    backlog: int = 4096

    @property
    def server_endpoint(self) -> str:
        """``listen`` with ``backlog`` added (TCP, SSL and UNIX endpoints take one)."""
        kind = self.listen.split(":", 1)[0].lower()
        if kind not in _BACKLOG_ENDPOINTS or "backlog=" in self.listen:
            return self.listen
        return f"{self.listen}:backlog={self.backlog}"


@dataclass(frozen=True)
class AgentsConfig:
    interface: str = "SIP/{agent}"
    hint_context: str = "agents"
    originate_context: str = "agents"
    originate_timeout: float = 30.0
    caller_id: str = ""
    grace_period: float = 60.0
    max_log: int = 10_000
    transfer_context: str = ""
    spy_context: str = "pbxis-spy"
    max_log_bytes: int = 256 * 1024 * 1024
    max_clients: int = 20
    snapshot_window: float = 1.0
    queue_tick: float = 0.2


#: Premium-rate prefixes (international 900, North American 1-900), with or without
#: an international prefix: the toll-fraud guard's default.
DEFAULT_DENY: tuple[str, ...] = (r"^(00|\+)?(900|1900)",)


@dataclass(frozen=True)
class OriginateConfig:
    """The ``[originate]`` guard against toll fraud: which numbers, how often, which caller id."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = DEFAULT_DENY
    allow_feature_codes: bool = False
    agent_rate: int = 10
    global_rate: int = 300
    rate_window: float = 60.0
    agents_may_set_caller_id: bool = False


@dataclass(frozen=True)
class SimulatorConfig:
    enabled: bool = False
    listen: str = "tcp:0:interface=127.0.0.1"
    agents: tuple[str, ...] = ("1001", "1002", "1003")
    queues: tuple[str, ...] = ("sales", "support")
    logged_in: bool = True
    calls_per_minute: float = 6.0
    talk_time: tuple[float, float] = (20.0, 60.0)
    seed: int | None = None
    #: which Asterisk the simulator plays: "20" (chan_sip) or "22" (PJSIP)
    asterisk: str = "20"
    #: its channel driver, "sip" or "pjsip"; empty: the version's own
    tech: str = ""


@dataclass(frozen=True)
class Thresholds:
    """When a wallboard tile turns amber and red: the longest wait at or above
    ``wait_*`` seconds, the service level performance at or below ``service_level_*``
    percent."""

    wait_amber: int = 30
    wait_red: int = 60
    service_level_amber: float = 80.0
    service_level_red: float = 60.0


@dataclass(frozen=True)
class SupervisorsConfig:
    """``[supervisors]``: the wallboard's thresholds, and per-queue overrides
    (``[supervisors.queues.sales]``)."""

    wait_amber: int = 30
    wait_red: int = 60
    service_level_amber: float = 80.0
    service_level_red: float = 60.0
    queues: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()

    @property
    def defaults(self) -> Thresholds:
        return Thresholds(self.wait_amber, self.wait_red, self.service_level_amber, self.service_level_red)

    def thresholds(self, queue: str) -> Thresholds:
        """The defaults with ``queue``'s overrides applied."""
        overrides = dict(dict(self.queues).get(queue, ()))
        base = self.defaults
        return Thresholds(
            wait_amber=int(overrides.get("wait_amber", base.wait_amber)),
            wait_red=int(overrides.get("wait_red", base.wait_red)),
            service_level_amber=float(overrides.get("service_level_amber", base.service_level_amber)),
            service_level_red=float(overrides.get("service_level_red", base.service_level_red)),
        )


@dataclass(frozen=True)
class RedisConfig:
    """``[redis]``: the shared store. ``password`` is resolved from the URL, a file or the
    environment; neither it nor the URL as written appear in ``repr`` (use :attr:`safe_url`)."""

    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    tls: bool = False
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str = ""
    password: str = field(default="", repr=False)
    key_prefix: str = "pbxis:"
    connect_timeout: float = 5.0
    command_timeout: float = 5.0
    outage_buffer_seconds: float = 30.0
    outage_buffer_events: int = 100_000

    @property
    def safe_url(self) -> str:
        """The URL for logs and ``/health``: never the password."""
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}:***@" if self.username else ("***@" if self.password else "")
        return f"{scheme}://{user}{self.host}:{self.port}/{self.db}"


NODE_ROLES = ("all", "web", "collector")


@dataclass(frozen=True)
class NodeConfig:
    """``[node]``: which parts of pbxis this process runs (see README, "Several nodes")."""

    role: str = "all"
    name: str = ""
    #: seconds a node holds the AMI lease without renewing it (renewed every third of it)
    lease_time: float = 5.0

    @property
    def has_ami(self) -> bool:
        return self.role in ("all", "collector")

    @property
    def has_http_api(self) -> bool:
        return self.role in ("all", "web")


DEFAULT_PBX = "default"
"""The name of the one PBX of a config with a lone ``[ami]`` table (or none: the demo)."""


@dataclass(frozen=True)
class PbxConfig:
    """One Asterisk server: a ``[[pbx]]`` table (or the lone ``[ami]``, named ``default``).

    ``agents`` is the top-level ``[agents]`` with this PBX's ``[pbx.agents]`` overrides."""

    name: str
    ami: AMIConfig = AMIConfig()
    agents: AgentsConfig = AgentsConfig()


@dataclass(frozen=True)
class TenantConfig:
    """A ``[[tenants]]`` table: API keys that see only ``pbxes`` (every other PBX is a 404)."""

    name: str
    pbxes: tuple[str, ...]
    api_keys: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Config:
    ami: AMIConfig = AMIConfig()
    http: HTTPConfig = HTTPConfig()
    agents: AgentsConfig = AgentsConfig()
    originate: OriginateConfig = OriginateConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    webhooks: tuple[WebhookConfig, ...] = ()
    supervisors: SupervisorsConfig = SupervisorsConfig()
    source: str = "<defaults>"
    #: ``None``: the in-memory store, one process (the embedded default)
    redis: RedisConfig | None = None
    node: NodeConfig = NodeConfig()
    #: the ``[[pbx]]`` tables; empty: one PBX ``default`` from ``ami`` and ``agents``
    pbx_tables: tuple[PbxConfig, ...] = ()
    tenants: tuple[TenantConfig, ...] = ()

    @property
    def pbxes(self) -> tuple[PbxConfig, ...]:
        """Every configured PBX, in config order (a lone ``[ami]``: one named ``default``)."""
        return self.pbx_tables or (PbxConfig(DEFAULT_PBX, self.ami, self.agents),)

    @property
    def demo(self) -> bool:
        """True when pbxis runs against its embedded simulated Asterisk."""
        return self.simulator.enabled


# -- the schema ---------------------------------------------------------------------

Check = Callable[[str, Any], Any]
_NAME = re.compile(AGENT_PATTERN)
_QUEUE = re.compile(QUEUE_PATTERN)
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?$")
_BACKLOG_ENDPOINTS = ("tcp", "tcp6", "ssl", "unix")


def _string(*, allow_empty: bool = True, choices: Sequence[str] = ()) -> Check:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_show(value)}")
        if choices and value not in choices:
            raise ConfigError(f"{key}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
        if not allow_empty and not value:
            raise ConfigError(f"{key}: must not be empty")
        if "\r" in value or "\n" in value:
            raise ConfigError(f"{key}: must not contain a line break")
        return value

    return check


def _number(*, low: float, high: float, integer: bool = False) -> Check:
    def check(key: str, value: Any) -> float | int:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{key}: expected {kind} from {_fmt(low)} to {_fmt(high)}, got {_show(value)}")
        if not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{key}: expected {kind} from {_fmt(low)} to {_fmt(high)}, got {_fmt(value)}")
        return value if integer else float(value)

    return check


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {_show(value)}")
    return value


def _string_list(pattern: re.Pattern[str] | None = None, what: str = "") -> Check:
    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {_show(value)}")
        for v in value:
            if pattern is not None and not pattern.fullmatch(v):
                raise ConfigError(f"{key}: {v!r} is not {what}")
        return tuple(value)

    return check


def _talk_time(key: str, value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not 0 < value[0] <= value[1] <= 3600
    ):
        raise ConfigError(
            f"{key}: expected [min, max] seconds with 0 < min <= max <= 3600, got {_show(value)}"
        )
    return (float(value[0]), float(value[1]))


def _template(key: str, raw: Any) -> str:
    value = str(_string(allow_empty=False)(key, raw))
    if "{agent}" not in value:
        raise ConfigError(f'{key}: must contain {{agent}}, e.g. "SIP/{{agent}}" or "PJSIP/{{agent}}"')
    try:
        value.format(agent="1001", name="x")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{key}: only {{agent}} may appear in braces ({e})") from None
    return value


def _caller_id(key: str, raw: Any) -> str:
    value = str(_string()(key, raw))
    try:
        value.format(agent="1001", name="Alice")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{key}: only {{agent}} and {{name}} may appear in braces ({e})") from None
    return value


def _redis_url(key: str, value: Any) -> str:
    text = str(_string(allow_empty=False)(key, value))
    _parse_redis_url(key, text)
    return text


def _parse_redis_url(key: str, value: str) -> dict[str, Any]:
    """``redis://[user[:password]@]host[:port][/db]`` or ``rediss://`` (TLS)."""
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        # the message of urllib's error may quote the URL, password included
        raise ConfigError(f"{key}: not a valid URL (expected redis://host:port/db)") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"{key}: expected a redis:// or rediss:// URL, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ConfigError(f"{key}: the URL names no host")
    db_text = parts.path.lstrip("/") or "0"
    if not db_text.isdigit() or int(db_text) > 10_000:
        raise ConfigError(f"{key}: the database number after the host must be an integer, got {db_text!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{key}: no query string or fragment allowed in the URL")
    return {
        "tls": parts.scheme == "rediss",
        "host": parts.hostname,
        "port": port or 6379,
        "db": int(db_text),
        "username": unquote(parts.username or "") if parts.password is not None else "",
        # "redis://secret@host": Redis's own URL form puts a bare password in the user part
        "password": unquote(parts.password if parts.password is not None else (parts.username or "")),
    }


_KEY_PREFIX = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def _key_prefix(key: str, value: Any) -> str:
    text = str(_string(allow_empty=False)(key, value))
    if not _KEY_PREFIX.match(text):
        raise ConfigError(f"{key}: 1-64 of A-Z a-z 0-9 _ . : - expected, got {text!r}")
    return text


def _regex_list(key: str, value: Any) -> tuple[str, ...]:
    patterns: tuple[str, ...] = _string_list()(key, value)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"{key}: {pattern!r} is not a regular expression ({e})") from None
    return patterns


def _optional_seed(key: str, value: Any) -> int:
    return int(_number(low=0, high=2**63 - 1, integer=True)(key, value))


_THRESHOLD_CHECKS: dict[str, Check] = {
    "wait_amber": _number(low=1, high=86400, integer=True),
    "wait_red": _number(low=1, high=86400, integer=True),
    "service_level_amber": _number(low=0, high=100),
    "service_level_red": _number(low=0, high=100),
}


def _queue_thresholds(key: str, value: Any) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """``[supervisors.queues.<queue>]`` tables of threshold overrides."""
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected tables [supervisors.queues.<queue>], got {_show(value)}")
    out = []
    for queue, body in value.items():
        name = f"[supervisors.queues.{queue}]"
        if not _QUEUE.match(queue):
            raise ConfigError(f"{name}: not a queue name (1-64 of A-Z a-z 0-9 _ . -)")
        if not isinstance(body, dict):
            raise ConfigError(f"{name}: expected a table of thresholds, got {_show(body)}")
        items = []
        for item, threshold in body.items():
            if item not in _THRESHOLD_CHECKS:
                raise ConfigError(f"{name}.{item}: unknown key (known: {', '.join(_THRESHOLD_CHECKS)})")
            items.append((item, float(_THRESHOLD_CHECKS[item](f"{name}.{item}", threshold))))
        out.append((queue, tuple(items)))
    return tuple(out)


SCHEMA: dict[str, dict[str, Check]] = {
    "ami": {
        "host": _string(allow_empty=False),
        "port": _number(low=1, high=65535, integer=True),
        "endpoint": _string(),
        "username": _string(allow_empty=False),
        "secret": _string(),
        "secret_file": _string(),
        "secret_env": _string(),
        "auth": _string(choices=("md5", "plain")),
        "events": _string(allow_empty=False),
        "action_timeout": _number(low=0.1, high=600),
        "connect_timeout": _number(low=0.1, high=600),
        "keepalive_interval": _number(low=1, high=3600),
        "keepalive_timeout": _number(low=0.5, high=600),
        "reconnect_min_delay": _number(low=0.01, high=600),
        "reconnect_max_delay": _number(low=0.01, high=3600),
        "reconnect_reset_after": _number(low=0, high=86400),
    },
    "http": {
        "listen": _string(allow_empty=False),
        "public_url": _string(),
        "api_keys": _string_list(),
        "api_keys_file": _string(),
        "allowed_origins": _string_list(),
        "metrics_public": _boolean,
        "allowed_hosts": _string_list(_HOST, "a host name or host:port (e.g. pbx.example.com)"),
        "header_timeout": _number(low=0.5, high=600),
        "body_timeout": _number(low=0.5, high=600),
        "backlog": _number(low=1, high=65535, integer=True),
    },
    "agents": {
        "interface": _template,
        "hint_context": _string(allow_empty=False),
        "originate_context": _string(allow_empty=False),
        "originate_timeout": _number(low=1, high=600),
        "caller_id": _caller_id,
        "grace_period": _number(low=1, high=86400),
        "max_log": _number(low=100, high=1_000_000, integer=True),
        "transfer_context": _string(),
        "spy_context": _string(allow_empty=False),
        "max_log_bytes": _number(low=1024 * 1024, high=64 * 1024**3, integer=True),
        "max_clients": _number(low=1, high=10_000, integer=True),
        "snapshot_window": _number(low=0, high=60),
        "queue_tick": _number(low=0, high=5),
    },
    "originate": {
        "allow": _regex_list,
        "deny": _regex_list,
        "allow_feature_codes": _boolean,
        "agent_rate": _number(low=0, high=1_000_000, integer=True),
        "global_rate": _number(low=0, high=1_000_000, integer=True),
        "rate_window": _number(low=1, high=86400),
        "agents_may_set_caller_id": _boolean,
    },
    "simulator": {
        "enabled": _boolean,
        "listen": _string(allow_empty=False),
        "agents": _string_list(_NAME, f"an agent name ({AGENT_HINT})"),
        "queues": _string_list(_QUEUE, f"a queue name ({QUEUE_HINT})"),
        "logged_in": _boolean,
        "calls_per_minute": _number(low=0, high=6000),
        "talk_time": _talk_time,
        "seed": _optional_seed,
        "asterisk": _string(choices=("20", "22")),
        "tech": _string(choices=("", "sip", "pjsip")),
    },
    "supervisors": {**_THRESHOLD_CHECKS, "queues": _queue_thresholds},
    "redis": {
        "url": _redis_url,
        "password_file": _string(),
        "password_env": _string(),
        "key_prefix": _key_prefix,
        "connect_timeout": _number(low=0.1, high=600),
        "command_timeout": _number(low=0.1, high=600),
        "outage_buffer_seconds": _number(low=0, high=3600),
        "outage_buffer_events": _number(low=100, high=10_000_000, integer=True),
    },
    "node": {
        "role": _string(choices=NODE_ROLES),
        "name": _string(),
        "lease_time": _number(low=1, high=300),
    },
}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict,)):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# -- loading -------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file; ``None`` gives the demo (simulator) defaults."""
    if path is None:
        return parse_config({}, source="<defaults>", environ=environ)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file; pass --config with the path of your pbxis.toml") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read it ({e.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: TOML syntax error: {e}") from None
    return parse_config(data, source=str(p), environ=environ, base=p.parent)


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> Config:
    """Validate a parsed TOML document and build a :class:`Config`."""
    environ = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {}
    webhooks: tuple[WebhookConfig, ...] = ()
    for section, body in data.items():
        if section == "webhooks":  # an array of tables, validated by its own module
            try:
                webhooks = parse_webhooks(body, environ=environ, base=base)
            except WebhookConfigError as e:
                raise ConfigError(str(e)) from None
            continue
        if section in ARRAY_SECTIONS:  # [[pbx]], [[tenants]]: below, once [agents] is known
            continue
        if section not in SCHEMA:
            raise ConfigError(
                f"[{section}]: unknown section; expected one of "
                f"{', '.join(f'[{s}]' for s in SCHEMA)}, [[webhooks]], [[pbx]], [[tenants]]"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{section}: expected a table [{section}], got {_show(body)}")
        checks = SCHEMA[section]
        out: dict[str, Any] = {}
        for key, value in body.items():
            name = f"[{section}].{key}"
            if key not in checks:
                near = _nearest(key, checks)
                hint = f"; did you mean {near!r}?" if near else ""
                raise ConfigError(f"{name}: unknown key{hint} (known: {', '.join(checks)})")
            out[key] = checks[key](name, value)
        values[section] = out

    ami = _ami_values(dict(values.get("ami", {})), "[ami]", environ, base)

    http = dict(values.get("http", {}))
    keys = list(http.get("api_keys", ()))
    keys_file = http.pop("api_keys_file", "")
    if keys_file:
        keys.extend(_read_keys_file(keys_file, base))
    for k in keys:
        if len(k) < 16:
            raise ConfigError("[http].api_keys: every API key must be at least 16 characters long")
    http["api_keys"] = tuple(keys)
    if "backlog" in http and "backlog=" in http.get("listen", ""):
        raise ConfigError("[http].backlog: set it in [http].backlog or in listen's backlog=, not both")
    if "backlog" in http and http.get("listen", "tcp").split(":", 1)[0].lower() not in _BACKLOG_ENDPOINTS:
        raise ConfigError(f"[http].backlog: applies to {', '.join(_BACKLOG_ENDPOINTS)} listen endpoints only")

    redis = _redis_config(values, data, environ, base)
    node = NodeConfig(**values.get("node", {}))
    if node.role != "all" and redis is None:
        raise ConfigError(
            f"[node].role: {node.role!r} needs a [redis] table (nodes share their state through Redis)"
        )
    if node.name and not _NAME.match(node.name):
        raise ConfigError(f"[node].name: {node.name!r} is not a node name (1-32 of A-Z a-z 0-9 _ . -)")

    sim = dict(values.get("simulator", {}))
    if "enabled" not in sim:
        # No Asterisk configured at all: run the demo on the embedded simulator
        # (a web node has no AMI link: nothing to simulate).
        sim["enabled"] = "ami" not in data and "pbx" not in data and node.role != "web"
    if sim["enabled"] and "pbx" in data:
        raise ConfigError(
            "[simulator].enabled: the embedded simulator plays one PBX; with [[pbx]] tables run "
            "one simulator per PBX (python -m pbxis.simulator) and point each [[pbx]] at it"
        )
    if sim["enabled"] and node.role == "web":
        raise ConfigError(
            "[simulator].enabled: a 'web' node has no AMI link; run the simulator on the collector"
        )
    agents = dict(values.get("agents", {}))
    if sim["enabled"]:
        _match_simulated_driver(sim, agents)
    pbx_tables = _pbx_tables(data, agents, environ, base)
    if redis is not None and len(pbx_tables) > 1 and node.role == "all":
        # an 'all' node would serve the API of the PBXes it holds from its own hub and of
        # the others as a web node: two roles per PBX that change at each takeover
        raise ConfigError(
            "[node].role: with [redis] and several [[pbx]] tables run 'collector' nodes (they "
            "share the PBXes' AMI links) and 'web' nodes (the API), not 'all' "
            '(README, "Several PBXes on Redis")'
        )
    if redis is not None and len(pbx_tables) > 1 and webhooks:
        # each PBX's holder would deliver from one outbox per endpoint that all holders share
        raise ConfigError(
            "[[webhooks]]: not available yet with [redis] and several [[pbx]] tables (the "
            "durable outbox is one per endpoint, not one per PBX); use one PBX per deployment "
            "or no [redis]"
        )
    tenants = _tenants(data.get("tenants"), {p.name for p in pbx_tables} or {DEFAULT_PBX}, base)
    if tenants:
        full = set(http["api_keys"])
        for tenant in tenants:
            for key in tenant.api_keys:
                if key in full:
                    raise ConfigError(
                        f"[[tenants]] {tenant.name}.api_keys: a key of [http].api_keys (which sees "
                        "every PBX) cannot also be a tenant's"
                    )
                full.add(key)
        if http.get("metrics_public", True):
            raise ConfigError(
                "[http].metrics_public: set it to false with [[tenants]]: public metrics would "
                "show every tenant's PBX to anyone"
            )
    return Config(
        pbx_tables=pbx_tables,
        tenants=tenants,
        ami=AMIConfig(**ami),
        http=HTTPConfig(**http),
        agents=AgentsConfig(**agents),
        originate=OriginateConfig(**values.get("originate", {})),
        simulator=SimulatorConfig(**sim),
        webhooks=webhooks,
        supervisors=SupervisorsConfig(**values.get("supervisors", {})),
        source=source,
        redis=redis,
        node=node,
    )


def _redis_config(
    values: dict[str, dict[str, Any]], data: Mapping[str, Any], environ: Mapping[str, str], base: Path | None
) -> RedisConfig | None:
    if "redis" not in data:
        return None
    raw = dict(values.get("redis", {}))
    url = raw.pop("url", RedisConfig.url)
    parsed = _parse_redis_url("[redis].url", url)
    sources = [k for k in ("password_file", "password_env") if raw.get(k)]
    if parsed["password"]:
        sources.insert(0, "url")
    if len(sources) > 1:
        raise ConfigError(
            f"[redis].{sources[1]}: give the password only once (URL, password_file or password_env)"
        )
    file_name = raw.pop("password_file", "")
    env_name = raw.pop("password_env", "")
    if env_name:
        if env_name not in environ:
            raise ConfigError(f"[redis].password_env: environment variable {env_name} is not set")
        parsed["password"] = environ[env_name]
    elif file_name:
        path = Path(file_name)
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            parsed["password"] = path.read_text("utf-8").strip()
        except OSError as e:
            raise ConfigError(f"[redis].password_file: cannot read {path} ({e.strerror})") from None
    return RedisConfig(url=url, **parsed, **raw)


def _match_simulated_driver(sim: dict[str, Any], agents: dict[str, Any]) -> None:
    """The embedded simulator's Asterisk and the agents' interface must agree.

    ``[agents].interface`` defaults to the simulated driver's (``PJSIP/{agent}`` for
    Asterisk 22); without ``[simulator] asterisk``/``tech`` a ``PJSIP/`` interface picks
    Asterisk 22. An interface of the other driver would match no queue member: an error.
    """
    from ..simulator.personality import personality

    chosen = "asterisk" in sim or bool(sim.get("tech"))
    given = agents.get("interface")
    if not chosen and isinstance(given, str) and given.startswith("PJSIP/"):
        sim["asterisk"], sim["tech"] = "22", "pjsip"
    try:
        plays = personality(sim.get("asterisk", "20"), sim.get("tech") or None)
    except ValueError as e:
        raise ConfigError(f"[simulator].tech: {e}") from None
    sim["asterisk"], sim["tech"] = plays.asterisk, plays.tech.lower()
    wanted = f"{plays.tech}/{{agent}}"
    given = agents.setdefault("interface", wanted)
    other = "SIP/" if plays.tech == "PJSIP" else "PJSIP/"
    if given.startswith(other):
        raise ConfigError(
            f"[agents].interface: the simulator plays Asterisk {plays.asterisk} with {plays.tech}"
            f' phones; use "{wanted}" (got {given!r})'
        )


def _ami_values(
    ami: dict[str, Any], section: str, environ: Mapping[str, str], base: Path | None
) -> dict[str, Any]:
    """Checked ``[ami]`` keys (or a ``[[pbx]]`` table's) as :class:`AMIConfig` arguments."""
    ami["secret"] = _resolve_secret(ami, environ, base, section)
    ami.pop("secret_file", None)
    ami.pop("secret_env", None)
    if ami.get("reconnect_min_delay", 0.5) > ami.get("reconnect_max_delay", 30.0):
        raise ConfigError(f"{section}.reconnect_min_delay: must not exceed {section}.reconnect_max_delay")
    return ami


ARRAY_SECTIONS = ("pbx", "tenants")
"""Arrays of tables besides ``[[webhooks]]``, validated by :func:`_pbx_tables` and :func:`_tenants`."""

_PBX = re.compile(PBX_PATTERN)
_PBX_KEYS = ("name", *SCHEMA["ami"], "agents")


def _tables(key: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"{key}: expected one or more [{key[2:-2]}] tables, got {_show(value)}")
    return value


def _table_name(key: str, index: int, table: dict[str, Any], taken: dict[str, int]) -> str:
    where = f"{key} #{index}"
    name = table.get("name")
    if name is None:
        raise ConfigError(f"{where}.name: required (1-32 of A-Z a-z 0-9 _ . -)")
    if not isinstance(name, str) or not _PBX.match(name):
        raise ConfigError(f"{where}.name: {_show(name)} is not a name (1-32 of A-Z a-z 0-9 _ . -)")
    if name in taken:
        raise ConfigError(f"{where}.name: {name!r} is already the name of {key} #{taken[name]}")
    taken[name] = index
    return name


def _pbx_tables(
    data: Mapping[str, Any], agents: dict[str, Any], environ: Mapping[str, str], base: Path | None
) -> tuple[PbxConfig, ...]:
    """``[[pbx]]`` tables: ``name``, ``[ami]``'s keys flat, ``[pbx.agents]`` over ``[agents]``."""
    if "pbx" not in data:
        return ()
    if "ami" in data:
        raise ConfigError(
            "[ami]: give either one [ami] table (one PBX named 'default') or [[pbx]] tables, not both"
        )
    out: list[PbxConfig] = []
    taken: dict[str, int] = {}
    for index, table in enumerate(_tables("[[pbx]]", data["pbx"]), start=1):
        name = _table_name("[[pbx]]", index, table, taken)
        section = f"[pbx.{name}]"
        ami: dict[str, Any] = {}
        overrides: dict[str, Any] = {}
        for key, value in table.items():
            if key == "name":
                continue
            if key == "agents":
                if not isinstance(value, dict):
                    raise ConfigError(f"{section}.agents: expected a table [pbx.agents], got {_show(value)}")
                for akey, avalue in value.items():
                    checks = SCHEMA["agents"]
                    if akey not in checks:
                        raise ConfigError(
                            f"[pbx.{name}.agents].{akey}: unknown key (known: {', '.join(checks)})"
                        )
                    overrides[akey] = checks[akey](f"[pbx.{name}.agents].{akey}", avalue)
                continue
            if key not in SCHEMA["ami"]:
                near = _nearest(key, dict.fromkeys(_PBX_KEYS))
                hint = f"; did you mean {near!r}?" if near else ""
                raise ConfigError(f"{section}.{key}: unknown key{hint} (known: {', '.join(_PBX_KEYS)})")
            ami[key] = SCHEMA["ami"][key](f"{section}.{key}", value)
        ami = _ami_values(ami, section, environ, base)
        out.append(PbxConfig(name, AMIConfig(**ami), AgentsConfig(**{**agents, **overrides})))
    return tuple(out)


_TENANT_CHECKS: dict[str, Check] = {
    "name": _string(allow_empty=False),
    "pbxes": _string_list(),
    "api_keys": _string_list(),
    "api_keys_file": _string(),
}


def _tenants(value: Any, pbxes: set[str], base: Path | None) -> tuple[TenantConfig, ...]:
    """``[[tenants]]``: ``name``, ``pbxes`` (configured PBX names) and their ``api_keys``."""
    if value is None:
        return ()
    out: list[TenantConfig] = []
    taken: dict[str, int] = {}
    seen_keys: dict[str, str] = {}
    for index, table in enumerate(_tables("[[tenants]]", value), start=1):
        name = _table_name("[[tenants]]", index, table, taken)
        where = f"[[tenants]] {name}"
        for key, item in table.items():
            if key not in _TENANT_CHECKS:
                raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(_TENANT_CHECKS)})")
            _TENANT_CHECKS[key](f"{where}.{key}", item)
        wanted = tuple(table.get("pbxes", ()))
        if not wanted:
            raise ConfigError(f"{where}.pbxes: required: the names of the [[pbx]] this tenant may see")
        for pbx in wanted:
            if pbx not in pbxes:
                raise ConfigError(
                    f"{where}.pbxes: {pbx!r} is not a configured PBX (known: {', '.join(sorted(pbxes))})"
                )
        keys = list(table.get("api_keys", ()))
        if table.get("api_keys_file"):
            keys.extend(_read_keys_file(table["api_keys_file"], base, f"{where}.api_keys_file"))
        if not keys:
            raise ConfigError(f"{where}.api_keys: required: at least one key (or api_keys_file)")
        for k in keys:
            if len(k) < 16:
                raise ConfigError(f"{where}.api_keys: every API key must be at least 16 characters long")
            if k in seen_keys:
                raise ConfigError(f"{where}.api_keys: a key of tenant {seen_keys[k]} too; give each key once")
            seen_keys[k] = name
        out.append(TenantConfig(name, tuple(dict.fromkeys(wanted)), tuple(keys)))
    return tuple(out)


def _resolve_secret(
    ami: dict[str, Any], environ: Mapping[str, str], base: Path | None, section: str = "[ami]"
) -> str:
    given = [k for k in ("secret", "secret_file", "secret_env") if ami.get(k)]
    if len(given) > 1:
        raise ConfigError(f"{section}.{given[1]}: set only one of secret, secret_file, secret_env")
    if "secret_env" in given:
        name = ami["secret_env"]
        if name not in environ:
            raise ConfigError(f"{section}.secret_env: environment variable {name} is not set")
        return environ[name]
    if "secret_file" in given:
        path = Path(ami["secret_file"])
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            return path.read_text("utf-8").strip()
        except OSError as e:
            raise ConfigError(f"{section}.secret_file: cannot read {path} ({e.strerror})") from None
    return str(ami.get("secret", ""))


def _read_keys_file(name: str, base: Path | None, key: str = "[http].api_keys_file") -> list[str]:
    path = Path(name)
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        text = path.read_text("utf-8")
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path} ({e.strerror})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _nearest(key: str, known: Mapping[str, Any]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    return match[0] if match else None
