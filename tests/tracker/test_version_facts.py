"""The version facts pbxis relies on, checked against both capture sets.

``shared/ami/reference.md`` gives them per release; the captures show them on a real
Asterisk 20.20.1 (chan_sip) and 22.10.1 (PJSIP):

* the banner's AMI version picks nothing in pbxis (9.0.0 on 20, 11.0.0 on 22, §6.3);
* ``Filter`` with ``MatchCriteria`` (18.26/20.11/21.6/22.1+) and the legacy regex form
  are both accepted, and the same malformed filters are refused with the same texts;
* ``ExtensionStateList`` (13+) answers with one ExtensionStatus item per hint;
* the event names of 12+ (QueueCallerJoin, QueueMemberPause...) and never 11's (Join,
  Leave, QueueMemberPaused), which the tracker still accepts;
* ``TechCause`` on Hangup (20.17/22.7+) comes from PJSIP only: chan_sip sets none.
"""

from __future__ import annotations

import pytest

from pbxis.ami.message import Banner
from pbxis.ami.parser import AMIParser
from pbxis.tracker.filters import advanced_filters
from tests.tracker.replay import CAPTURE_SETS, messages

SETS = sorted(CAPTURE_SETS)
VERSIONS = {"chan_sip20": ("9.0.0", "20.20.1"), "pjsip22": ("11.0.0", "22.10.1")}


def _answers(name: str, capture_set: str) -> dict[str, object]:
    return {m.action_id: m for m in messages(name, capture_set) if m.response is not None and m.action_id}


def _filter_answers(name: str, capture_set: str) -> list[tuple[str, str]]:
    sent = (CAPTURE_SETS[capture_set] / name.replace(".ami", ".sent")).read_bytes()
    parser = AMIParser(expect_banner=False)
    parser.receive_data(sent)
    ids = [m.action_id for m in parser.messages() if getattr(m, "action", None) == "Filter"]
    answers = _answers(name, capture_set)
    return [(answers[i].get("Response"), answers[i].get("Message")) for i in ids]  # type: ignore[attr-defined]


@pytest.mark.parametrize("capture_set", SETS)
def test_banner_and_core_settings(capture_set: str) -> None:
    parser = AMIParser()
    parser.receive_data((CAPTURE_SETS[capture_set] / "state_dump.client.ami").read_bytes())
    banner = next(item for item in parser.messages() if isinstance(item, Banner))
    ami, version = VERSIONS[capture_set]
    assert banner.version == ami
    settings = next(m for m in messages("state_dump.client.ami", capture_set) if m.get("AMIversion"))
    assert (settings["AMIversion"], settings["AsteriskVersion"]) == (ami, version)


@pytest.mark.parametrize("capture_set", SETS)
def test_both_filter_forms_are_accepted_and_bad_ones_refused_alike(capture_set: str) -> None:
    assert _filter_answers("filter_adv_name.client.ami", capture_set) == [("Success", "Success")]
    assert _filter_answers("filter_legacy_regex.client.ami", capture_set) == [("Success", "Success")]
    refused = _filter_answers("filter_bad.client.ami", capture_set)
    assert refused and all(r == "Error" for r, _ in refused)
    assert refused == _filter_answers("filter_bad.client.ami", "chan_sip20")
    assert any(h == ("MatchCriteria", "name(QueueMemberStatus)") for f in advanced_filters() for h in f)


@pytest.mark.parametrize("capture_set", SETS)
def test_extension_state_list_lists_every_hint(capture_set: str) -> None:
    msgs = messages("state_dump.client.ami", capture_set)
    done = next(m for m in msgs if m.event == "ExtensionStateListComplete")
    items = [m for m in msgs if m.event == "ExtensionStatus" and m.action_id == done.action_id]
    assert sorted(m["Exten"] for m in items) == ["1001", "1002", "1003", "1009"]
    assert done["ListItems"] == "4"


@pytest.mark.parametrize("capture_set", SETS)
def test_event_names_are_those_of_12_and_later(capture_set: str) -> None:
    names = {m.event for p in CAPTURE_SETS[capture_set].glob("*.ami") for m in messages(p.name, capture_set)}
    assert {"QueueCallerJoin", "QueueCallerLeave", "QueueMemberPause", "AgentConnect"} <= names
    assert not names & {"Join", "Leave", "QueueMemberPaused", "Link", "Unlink", "Bridge", "Dial"}


@pytest.mark.parametrize("capture_set", SETS)
def test_tech_cause_comes_from_pjsip_only(capture_set: str) -> None:
    hangups = [m for p in CAPTURE_SETS[capture_set].glob("*.ami") for m in messages(p.name, capture_set)
               if m.event in ("Hangup", "HangupRequest")]  # fmt: skip
    with_tech = {
        (m["Channel"].split("/")[0], m["Cause"], m["TechCause"]) for m in hangups if "TechCause" in m
    }
    if capture_set == "chan_sip20":
        assert with_tech == set()
    else:
        assert with_tech == {("PJSIP", "17", "486"), ("PJSIP", "19", "480")}


def test_sippeers_is_gone_on_22() -> None:
    answer = _answers("state_dump.client.ami", "pjsip22")["drv-80"]
    assert answer.get("Message", "").startswith("Invalid/unknown command: SIPpeers.")  # type: ignore[attr-defined]
    sip = [m for m in messages("state_dump.client.ami", "chan_sip20") if m.event == "PeerlistComplete"]
    assert sip and sip[0]["ListItems"] == "5"
