"""The [[webhooks]] tables: defaults, filters, secrets, errors naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pbxis.config import ConfigError, parse_config
from pbxis.webhooks.config import DEFAULT_EVENTS, WebhookConfigError, parse_webhooks

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_defaults_and_filters() -> None:
    doc = tomllib.loads(
        f"""
        [[webhooks]]
        url = "http://127.0.0.1:9000/hooks"
        secret = "{SECRET}"

        [[webhooks]]
        name = "tickets"
        url = "https://crm.example.com/t"
        secret_env = "HOOK_SECRET"
        events = ["agentComplete"]
        agents = ["1001"]
        queues = ["sales"]
        pbx = ["default"]
        timeout = 2.5
        max_age = 3600
        """
    )
    first, second = parse_webhooks(doc["webhooks"], environ={"HOOK_SECRET": SECRET})
    assert first.events == frozenset(DEFAULT_EVENTS)
    assert first.name == "127.0.0.1:9000" and first.max_age == 86400 and first.agents is None
    assert second.name == "tickets" and second.timeout == 2.5 and second.max_age == 3600
    assert second.key == first.key
    assert "whsec" not in repr(second) and repr(second.key) not in repr(second)

    complete = {"type": "agentComplete", "queue": "sales"}
    assert second.wants("default", "1001", ["sales"], complete)
    assert not second.wants("default", "1002", ["sales"], complete)
    assert not second.wants("other", "1001", ["sales"], complete)
    assert not second.wants("default", "1001", ["sales"], {**complete, "queue": "support"})
    assert not second.wants("default", "1001", ["sales"], {"type": "phoneNumber", "queue": "sales"})
    # An event of no queue goes by the agent's registered queues.
    direct = {"type": "agentComplete", "queue": None}
    assert second.wants("default", "1001", ["support", "sales"], direct)
    assert not second.wants("default", "1001", ["support"], direct)


def test_secret_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text(SECRET + "\n")
    (hook,) = parse_webhooks([{"url": "http://h/x", "secret_file": "hook.secret"}], environ={}, base=tmp_path)
    assert len(hook.key) == 24


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"secret": SECRET}, r"#1\.url: required"),
        ({"url": "ftp://h/x", "secret": SECRET}, r"#1\.url: expected an http"),
        ({"url": "http://h/x"}, r"#1\.secret: required"),
        ({"url": "http://h/x", "secret": "no pe"}, r"#1\.secret: not a Standard Webhooks secret"),
        ({"url": "http://h/x", "secret": SECRET, "secret_env": "X"}, r"set only one"),
        ({"url": "http://h/x", "secret_env": "UNSET"}, r"UNSET is not set"),
        (
            {"url": "http://h/x", "secret": SECRET, "events": ["ringing"]},
            r"#1\.events: unknown event type 'ringing'",
        ),
        ({"url": "http://h/x", "secret": SECRET, "timeout": 0}, r"#1\.timeout: expected a number"),
        ({"url": "http://h/x", "secret": SECRET, "agents": "1001"}, r"#1\.agents: expected a list"),
        ({"url": "http://h/x", "secret": SECRET, "retries": 3}, r"#1\.retries: unknown key"),
    ],
)
def test_errors_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(WebhookConfigError, match=message):
        parse_webhooks([table], environ={})


def test_duplicate_names_are_refused() -> None:
    table = {"url": "http://h/x", "secret": SECRET}
    with pytest.raises(WebhookConfigError, match=r"#2\.name: 'h' is used"):
        parse_webhooks([table, table], environ={})


def test_the_daemon_config_validates_the_section() -> None:
    config = parse_config({"webhooks": [{"url": "http://h/x", "secret": SECRET}]}, environ={})
    assert [w.url for w in config.webhooks] == ["http://h/x"]
    with pytest.raises(ConfigError, match=r"\[\[webhooks\]\] #1\.url"):
        parse_config({"webhooks": [{"secret": SECRET}]}, environ={})
    with pytest.raises(ConfigError, match="array of tables"):
        parse_config({"webhooks": {"url": "http://h/x"}}, environ={})
