"""``[redis]`` and ``[node]``: URL forms, the password's three sources, never logged; roles need Redis."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from pbxis.config import SAMPLE_PATH, ConfigError, load_config, parse_config


def test_no_redis_table_is_the_memory_store() -> None:
    config = parse_config({"ami": {"secret": "x"}})
    assert config.redis is None
    assert config.node.role == "all"


def test_url_parts_and_tls() -> None:
    config = parse_config({"redis": {"url": "rediss://pbxis:s3cret@redis.example.com:6380/2"}})
    r = config.redis
    assert r is not None
    assert (r.tls, r.host, r.port, r.db, r.username, r.password) == (
        True, "redis.example.com", 6380, 2, "pbxis", "s3cret",
    )  # fmt: skip
    assert r.safe_url == "rediss://pbxis:***@redis.example.com:6380/2"


def test_bare_password_in_url_and_defaults() -> None:
    r = parse_config({"redis": {"url": "redis://:pw@127.0.0.1"}}).redis
    assert r is not None and (r.password, r.username, r.port, r.db, r.tls) == ("pw", "", 6379, 0, False)
    r = parse_config({"redis": {}}).redis
    assert r is not None and r.url == "redis://127.0.0.1:6379/0" and r.key_prefix == "pbxis:"


def test_password_never_in_repr_or_safe_url() -> None:
    config = parse_config({"redis": {"url": "redis://u:topsecret@h:1/0"}})
    assert "topsecret" not in repr(config)
    assert config.redis is not None and "topsecret" not in config.redis.safe_url


def test_password_from_env_and_file(tmp_path: Path) -> None:
    r = parse_config({"redis": {"password_env": "RPW"}}, environ={"RPW": "from-env"}).redis
    assert r is not None and r.password == "from-env"
    (tmp_path / "pw").write_text("from-file\n")
    path = tmp_path / "pbxis.toml"
    path.write_text("[redis]\npassword_file = 'pw'\n")
    r = load_config(path).redis
    assert r is not None and r.password == "from-file"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"redis": {"url": "http://h"}}, "[redis].url: expected a redis:// or rediss:// URL"),
        ({"redis": {"url": "redis://h:99999"}}, "[redis].url: not a valid URL"),
        ({"redis": {"url": "redis://h/x"}}, "[redis].url: the database number"),
        ({"redis": {"url": "redis:///0"}}, "[redis].url: the URL names no host"),
        ({"redis": {"url": "redis://:a@h", "password_env": "X"}}, "[redis].password_env: give the password"),
        ({"redis": {"password_env": "NOPE"}}, "[redis].password_env: environment variable NOPE is not set"),
        ({"redis": {"password_file": "/nonexistent/pw"}}, "[redis].password_file: cannot read"),
        ({"redis": {"key_prefix": "a b"}}, "[redis].key_prefix: 1-64 of"),
        ({"redis": {"command_timeout": 0}}, "[redis].command_timeout: expected a number"),
        ({"node": {"role": "web"}}, "[node].role: 'web' needs a [redis] table"),
        ({"node": {"role": "collector"}}, "[node].role: 'collector' needs a [redis] table"),
        ({"node": {"role": "both"}}, "[node].role: expected one of 'all', 'web', 'collector'"),
        ({"node": {"name": "a b"}}, "[node].name: 'a b' is not a node name"),
        ({"redis": {}, "node": {"role": "web"}, "simulator": {"enabled": True}}, "[simulator].enabled"),
    ],
)
def test_mistakes_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ={})
    assert message in str(info.value)


def test_a_bad_url_error_does_not_show_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"redis": {"url": "redis://u:hunter2@h:notaport/0"}})
    assert "hunter2" not in str(info.value)


def test_roles() -> None:
    web = parse_config({"redis": {}, "node": {"role": "web"}}).node
    collector = parse_config({"redis": {}, "node": {"role": "collector"}, "ami": {}}).node
    assert (web.has_ami, web.has_http_api) == (False, True)
    assert (collector.has_ami, collector.has_http_api) == (True, False)


def test_the_sample_documents_redis_commented_out() -> None:
    text = SAMPLE_PATH.read_text("utf-8")
    block = text[text.index("# [redis]") : text.index("[node]")]
    keys = [line[2:] for line in block.splitlines() if re.match(r"^# [a-z_]+ = ", line)]
    data = tomllib.loads("\n".join(k for k in keys if not k.startswith("password_")))
    # uncommented, the [redis] block is a valid table (the password keys are alternatives)
    redis = parse_config({"redis": data}).redis
    assert redis is not None and redis.key_prefix == "pbxis:"
    # as shipped, the sample stays one node on the memory store
    assert load_config(SAMPLE_PATH).redis is None
