"""Event masks and Filter parsing, with the spellings Asterisk 20.20 accepts and refuses."""

from __future__ import annotations

import pytest

from pbxis.simulator.filters import (
    ALL_CLASSES,
    FILTER_BAD_FORMAT,
    FILTER_NO_COMPILE,
    FilterError,
    filters_allow,
    parse_filter,
    parse_mask,
)

QMS = "Event: QueueMemberStatus\r\nPrivilege: agent,all\r\nQueue: sales\r\nInterface: SIP/1001\r\n"
QMS_PAIRS = [("Event", "QueueMemberStatus"), ("Queue", "sales"), ("Interface", "SIP/1001")]
NEWCHAN = "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: SIP/1001-0000000a\r\n"
NEWCHAN_PAIRS = [("Event", "Newchannel"), ("Channel", "SIP/1001-0000000a")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("on", ALL_CLASSES),
        ("yes", ALL_CLASSES),
        ("off", frozenset()),
        ("bogus", frozenset()),  # a misspelt class list is silently "off"
        ("agent", frozenset({"agent"})),
        ("system,call", frozenset({"system", "call"})),
        ("33", frozenset({"system", "agent"})),  # bits 1 and 32
        ("call,,agent", ALL_CLASSES),  # an empty token matches every class
    ],
)
def test_parse_mask(value, expected):
    assert parse_mask(value) == expected


def test_empty_mask_is_invalid():
    assert parse_mask("") is None
    assert parse_mask("  ") is None


def _allowed(filters, text=QMS, pairs=QMS_PAIRS):
    event = dict(pairs)["Event"]
    return filters_allow(filters, event, text, pairs)


def test_legacy_regex_include_and_exclude():
    include = parse_filter("Event: QueueMemberStatus", None)
    assert _allowed([include])
    assert not _allowed([include], NEWCHAN, NEWCHAN_PAIRS)
    exclude = parse_filter("!Channel: SIP/", None)
    assert _allowed([exclude])
    assert not _allowed([exclude], NEWCHAN, NEWCHAN_PAIRS)


def test_legacy_regex_spans_lines_and_anchors_at_the_event_start():
    assert _allowed([parse_filter("Event: Newchannel.*Channel: SIP/1001", None)], NEWCHAN, NEWCHAN_PAIRS)
    assert not _allowed([parse_filter("^Privilege", None)])


def test_match_criteria_forms():
    name_only = parse_filter(None, "name(QueueMemberStatus)")
    assert _allowed([name_only]) and not _allowed([name_only], NEWCHAN, NEWCHAN_PAIRS)
    header = parse_filter("sales", "action(include),name(QueueMemberStatus),header(Queue),method(exact)")
    assert _allowed([header])
    assert not _allowed([parse_filter("sal", "header(Queue),method(exact)")])
    starts = parse_filter("SIP/1001-", "header(Channel),method(starts_with)")
    assert _allowed([starts], NEWCHAN, NEWCHAN_PAIRS) and not _allowed([starts])
    exclude = parse_filter(None, "action(exclude),name(Newchannel)")
    assert _allowed([exclude]) and not _allowed([exclude], NEWCHAN, NEWCHAN_PAIRS)


def test_include_then_exclude_rule():
    both = [parse_filter(None, "name(QueueMemberStatus)"), parse_filter("!Queue: sales", None)]
    assert not _allowed(both)
    assert _allowed([])


@pytest.mark.parametrize(
    ("text", "criteria", "message"),
    [
        ("sa", "header(Queue),method(startsWith)", FILTER_BAD_FORMAT),  # the doc's spelling
        ("Event: (unclosed", None, FILTER_NO_COMPILE),
        (None, None, FILTER_BAD_FORMAT),  # empty legacy filter (20.11+)
        ("x", "name(QueueMemberStatus),method(none)", FILTER_BAD_FORMAT),
        ("x", "name(QueueMemberStatus)", FILTER_BAD_FORMAT),  # a pattern needs a method
        (None, "name(A),name(B)", FILTER_BAD_FORMAT),
        (None, "colour(red)", FILTER_BAD_FORMAT),
    ],
)
def test_refused_filters(text, criteria, message):
    with pytest.raises(FilterError) as info:
        parse_filter(text, criteria)
    assert str(info.value) == message
