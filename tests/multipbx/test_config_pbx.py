"""``[[pbx]]`` tables: each a name and ``[ami]``'s keys, ``[pbx.agents]`` over ``[agents]``;
a lone ``[ami]`` is one PBX named ``default``; every mistake names its key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pbxis.config import ConfigError, parse_config


def test_pbx_tables_with_agents_overrides() -> None:
    config = parse_config(
        {
            "agents": {"interface": "SIP/{agent}", "grace_period": 90},
            "pbx": [
                {"name": "east", "host": "10.0.0.1", "secret": "e", "agents": {"interface": "PJSIP/{agent}"}},
                {"name": "west", "host": "10.0.0.2", "port": 5039, "secret_env": "WEST"},
            ],
        },
        environ={"WEST": "w"},
    )
    east, west = config.pbxes
    assert (east.name, east.ami.host, east.ami.secret, east.agents.interface) == (
        "east",
        "10.0.0.1",
        "e",
        "PJSIP/{agent}",
    )
    assert east.agents.grace_period == 90.0  # the top-level default where not overridden
    assert (west.name, west.ami.port, west.ami.secret, west.agents.interface) == (
        "west",
        5039,
        "w",
        "SIP/{agent}",
    )
    assert not config.demo


def test_a_lone_ami_table_is_one_pbx_named_default() -> None:
    config = parse_config({"ami": {"host": "pbx.example.com"}})
    (only,) = config.pbxes
    assert only.name == "default" and only.ami.host == "pbx.example.com"
    assert [p.name for p in parse_config({}).pbxes] == ["default"]  # the demo


def test_several_pbxes_on_redis_run_collector_and_web_nodes() -> None:
    redis = {"url": "redis://127.0.0.1:6379/0"}
    for role in ("collector", "web"):
        config = parse_config({"pbx": [{"name": "e"}, {"name": "w"}], "redis": redis, "node": {"role": role}})
        assert [p.name for p in config.pbxes] == ["e", "w"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ami": {}, "pbx": [{"name": "east"}]}, "[ami]: give either one [ami] table"),
        ({"pbx": [{"name": "east"}, {"name": "east"}]}, "[[pbx]] #2.name: 'east' is already"),
        ({"pbx": [{"name": "ea st"}]}, "[[pbx]] #1.name: 'ea st' is not a name"),
        ({"pbx": [{"name": ".."}]}, "[[pbx]] #1.name"),
        ({"pbx": [{"port": 5038}]}, "[[pbx]] #1.name: required"),
        ({"pbx": [{"name": 7}]}, "[[pbx]] #1.name"),
        ({"pbx": [{"name": "east", "prot": 1}]}, "[pbx.east].prot: unknown key; did you mean 'port'?"),
        ({"pbx": [{"name": "east", "port": "x"}]}, "[pbx.east].port: expected an integer"),
        ({"pbx": [{"name": "east", "agents": {"interface": "SIP/x"}}]}, "[pbx.east.agents].interface"),
        ({"pbx": [{"name": "east", "agents": {"nope": 1}}]}, "[pbx.east.agents].nope: unknown key"),
        (
            {"pbx": [{"name": "east", "secret": "a", "secret_env": "B"}]},
            "[pbx.east].secret_env: set only one",
        ),
        (
            {"pbx": [{"name": "e", "reconnect_min_delay": 9, "reconnect_max_delay": 1}]},
            "[pbx.e].reconnect_min",
        ),
        ({"pbx": {"name": "east"}}, "[[pbx]]: expected one or more [pbx] tables"),
        ({"pbx": []}, "[[pbx]]: expected one or more"),
        ({"pbx": [{"name": "east"}], "simulator": {"enabled": True}}, "[simulator].enabled"),
        (
            {"pbx": [{"name": "e"}, {"name": "w"}], "redis": {"url": "redis://127.0.0.1:6379/0"}},
            "[node].role: with [redis] and several [[pbx]]",
        ),
        (
            {
                "pbx": [{"name": "e"}, {"name": "w"}],
                "redis": {"url": "redis://127.0.0.1:6379/0"},
                "node": {"role": "collector"},
                "webhooks": [{"url": "http://h/x", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}],
            },
            "[[webhooks]]: not available yet with [redis] and several [[pbx]]",
        ),
    ],
)
def test_pbx_mistakes_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert message in str(raised.value)


def test_twistd_check_names_each_pbx(tmp_path: Path) -> None:
    path = tmp_path / "pbxis.toml"
    path.write_text('[[pbx]]\nname = "east"\nhost = "10.0.0.1"\n[[pbx]]\nname = "west"\nport = 5039\n')
    done = subprocess.run(
        [sys.executable, "-m", "twisted", "pbxis", "--config", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "east=tcp:host=10.0.0.1:port=5038" in done.stdout
        and "west=tcp:host=127.0.0.1:port=5039" in done.stdout
    )
