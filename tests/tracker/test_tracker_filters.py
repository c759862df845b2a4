"""The filter set lets through exactly what the tracker needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxis.tracker.filters import (
    EVENT_NAMES,
    PROBE,
    advanced_filters,
    legacy_filters,
    legacy_passes,
    manager_conf_lines,
    passes,
)
from tests.tracker.replay import CAPTURE_SETS, TECH, lab_tracker, messages, replay

SCENARIOS = ["inbound_call.ami", "queue_waiting.ami", "originate_out.ami", "originate_fail.ami"]


@pytest.mark.parametrize("capture_set", sorted(CAPTURE_SETS))
@pytest.mark.parametrize("capture", SCENARIOS)
def test_filtered_stream_digests_to_the_same_events(capture, capture_set):
    """On Asterisk 20 (chan_sip) and 22 (PJSIP) alike: HangupRequest, which 22 adds to a
    busy originate, is not needed (busy is in DialEnd/Hangup)."""
    msgs = messages(capture, capture_set)
    originates = {m.action_id for m in msgs if m.event == "OriginateResponse"}

    def run(stream):
        tracker = lab_tracker("1009", tech=TECH[capture_set])
        for action_id in originates:
            tracker.note_originate(action_id, "1001", "0911234567")
        return [(e.agent, e.type, dict(e.data)) for e in replay(tracker, stream)]

    filtered = [m for m in msgs if not m.is_event or passes(m)]
    assert len(filtered) < len(msgs) / 2
    unfiltered = run(msgs)
    assert unfiltered and run(filtered) == unfiltered


@pytest.mark.parametrize("capture_set", sorted(CAPTURE_SETS))
@pytest.mark.parametrize("capture", SCENARIOS)
def test_legacy_regexes_agree_with_advanced_form(capture, capture_set):
    for m in messages(capture, capture_set):
        if m.is_event:
            assert legacy_passes(m.to_bytes().decode()) == passes(m), m


def test_spellings_match_what_asterisk_20_accepted():
    advanced = advanced_filters()
    # name(X) alone, no Filter header (filter_adv_name: accepted)
    assert (("Operation", "Add"), ("MatchCriteria", "name(Hangup)")) in advanced
    # name+header+method(exact) with a value (filter_adv_name_header: accepted)
    assert advanced[-1][1][1].startswith("action(include),name(VarSet),header(Variable)")
    text = repr(advanced + legacy_filters()) + repr(PROBE)
    assert "startsWith" not in text and "method(none)" not in text  # refused in filter_bad
    assert all(len(v) < 1000 for h in advanced + legacy_filters() for _, v in h)
    assert manager_conf_lines()[-1].endswith("= MIXMONITOR_FILENAME")


def test_hangup_regex_does_not_match_hanguprequest():
    assert not legacy_passes("Event: HangupRequest\r\nPrivilege: call,all\r\n")
    assert legacy_passes("Event: Hangup\r\nPrivilege: call,all\r\n")


def test_readme_shows_the_filter_pbxis_installs() -> None:
    """The manager.conf lines in README.rst are the ones pbxis logs and installs."""
    readme = (Path(__file__).resolve().parents[2] / "README.rst").read_text()
    assert [line for line in manager_conf_lines() if line not in readme] == []
    assert f"only the {len(EVENT_NAMES)} events the tracker digests" in readme
    assert [f for (_, (_, f)) in legacy_filters() if f"eventfilter = {f}" not in readme] == []
