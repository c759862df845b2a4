"""The configuration: every mistake is one line naming the key; the sample documents every key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pbxis.config import SAMPLE_PATH, SCHEMA, ConfigError, load_config, parse_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pbxis.toml"
    path.write_text(text, "utf-8")
    return path


def test_no_file_is_the_demo() -> None:
    config = load_config(None)
    assert config.demo
    assert config.agents.interface == "SIP/{agent}"


def test_ami_table_turns_the_demo_off(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[ami]\nhost = "pbx.example.com"\nsecret = "s"\n'))
    assert not config.demo
    assert config.ami.client_endpoint == "tcp:host=pbx.example.com:port=5038:timeout=10"


def test_sample_is_valid_and_names_every_key() -> None:
    config = load_config(SAMPLE_PATH)
    assert not config.demo
    text = SAMPLE_PATH.read_text("utf-8")
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert re.search(rf"^#? ?{key} = ", text, re.MULTILINE), f"[{section}].{key} missing from sample"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ami]\nport = 'five'\n", "[ami].port: expected an integer from 1 to 65535, got 'five'"),
        ("[ami]\nport = 70000\n", "[ami].port: expected an integer from 1 to 65535, got 70000"),
        ("[ami]\nprot = 5038\n", "[ami].prot: unknown key; did you mean 'port'?"),
        ("[amy]\n", "[amy]: unknown section"),
        ("[http]\napi_keys = 'k'\n", "[http].api_keys: expected a list of strings, got 'k'"),
        ("[http]\napi_keys = ['short']\n", "[http].api_keys: every API key must be at least 16"),
        ("[http]\nmetrics_public = 1\n", "[http].metrics_public: expected true or false, got int 1"),
        ("[agents]\ninterface = 'SIP/1001'\n", "[agents].interface: must contain {agent}"),
        ("[agents]\ninterface = 'SIP/{agent}{x}'\n", "[agents].interface: only {agent} may appear"),
        ("[agents]\ngrace_period = 0\n", "[agents].grace_period: expected a number from 1 to 86400"),
        ("[ami]\nauth = 'sha1'\n", "[ami].auth: expected one of 'md5', 'plain', got 'sha1'"),
        ("[ami]\nsecret = 'a'\nsecret_env = 'X'\n", "[ami].secret_env: set only one of"),
        (
            "[ami]\nsecret_env = 'PBXIS_NOPE'\n",
            "[ami].secret_env: environment variable PBXIS_NOPE is not set",
        ),
        ("[ami]\nsecret_file = 'nope.txt'\n", "[ami].secret_file: cannot read"),
        (
            "[ami]\nreconnect_min_delay = 9\nreconnect_max_delay = 2\n",
            "[ami].reconnect_min_delay: must not exceed",
        ),
        ("[simulator]\nagents = ['10 01']\n", "[simulator].agents: '10 01' is not an agent name"),
        ("[simulator]\nagents = ['..']\n", "[simulator].agents: '..' is not an agent name"),
        ("[http]\nallowed_hosts = ['http://x']\n", "[http].allowed_hosts: 'http://x' is not a host name"),
        ("[http]\nheader_timeout = 0\n", "[http].header_timeout: expected a number from 0.5 to 600"),
        ("[http]\nbacklog = 0\n", "[http].backlog: expected an integer from 1 to 65535"),
        (
            "[http]\nbacklog = 10\nlisten = 'tcp:80:backlog=5'\n",
            "[http].backlog: set it in [http].backlog or in listen's backlog=, not both",
        ),
        ("[http]\nbacklog = 10\nlisten = 'systemd:domain=INET:index=0'\n", "[http].backlog: applies to"),
        ("[ami]\nreconnect_reset_after = -1\n", "[ami].reconnect_reset_after: expected a number"),
        ("[simulator]\ntalk_time = [5]\n", "[simulator].talk_time: expected [min, max]"),
        ("ami = 3\n", "ami: expected a table [ami], got int 3"),
        ("[ami\n", "TOML syntax error"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_secret_sources(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-file\n")
    assert load_config(write(tmp_path, "[ami]\nsecret_file = 'secret'\n")).ami.secret == "from-file"
    config = parse_config({"ami": {"secret_env": "S"}}, environ={"S": "from-env"})
    assert config.ami.secret == "from-env"
    assert "from-env" not in repr(config)


def test_api_keys_file(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text("# CRM\nkey-aaaaaaaaaaaaaaaa\n\nkey-bbbbbbbbbbbbbbbb\n")
    config = load_config(
        write(tmp_path, "[http]\napi_keys = ['key-cccccccccccccccc']\napi_keys_file = 'keys'\n")
    )
    assert config.http.api_keys == ("key-cccccccccccccccc", "key-aaaaaaaaaaaaaaaa", "key-bbbbbbbbbbbbbbbb")


def test_twistd_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nport = 'five'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "pbxis", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "pbxis: configuration error: [ami].port: expected an integer from 1 to 65535, got 'five'"
    )


def test_twistd_check_and_help(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nsecret = 'x'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "pbxis", "--config", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "is valid" in proc.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "twisted", "pbxis", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "--config" in helped.stdout and "--sample-config" in helped.stdout


def test_simulator_asterisk_22_means_pjsip_interfaces(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[simulator]\nasterisk = "22"\n'))
    assert config.demo and config.simulator.asterisk == "22"
    assert config.agents.interface == "PJSIP/{agent}"
    same = load_config(
        write(
            tmp_path, '[simulator]\nasterisk = "22"\ntech = "pjsip"\n[agents]\ninterface = "PJSIP/{agent}"\n'
        )
    )
    assert same.agents.interface == "PJSIP/{agent}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[simulator]\nasterisk = "22"\ntech = "sip"\n',
            "[simulator].tech: chan_sip is gone from Asterisk 21",
        ),
        ('[simulator]\nasterisk = "21"\n', "[simulator].asterisk: expected one of '20', '22'"),
        (
            '[simulator]\nasterisk = "22"\n[agents]\ninterface = "SIP/{agent}"\n',
            '[agents].interface: the simulator plays Asterisk 22 with PJSIP phones; use "PJSIP/{agent}"',
        ),
    ],
)
def test_simulated_driver_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)


def test_the_pjsip22_demo_config_is_valid() -> None:
    """``make demo CONFIG=docs/demo-pjsip22.toml`` (tests/browser/test_agent_page_pjsip22 runs it)."""
    config = load_config(Path(__file__).resolve().parents[1] / "docs" / "demo-pjsip22.toml")
    assert config.demo
    assert (config.simulator.asterisk, config.agents.interface) == ("22", "PJSIP/{agent}")


def test_a_pjsip_interface_makes_the_demo_play_asterisk_22(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[agents]\ninterface = "PJSIP/{agent}"\n'))
    assert config.demo and (config.simulator.asterisk, config.simulator.tech) == ("22", "pjsip")
    plain = load_config(None)
    assert (plain.simulator.asterisk, plain.simulator.tech, plain.agents.interface) == (
        "20",
        "sip",
        "SIP/{agent}",
    )
