"""What the existing property tests (tests/ami, tests/tracker, tests/hub) left out.

The parser's properties covered any bytes (no unexpected exception) and valid messages
*before* garbage; here, valid messages *after* a damaged one must still come out, with
any chunking: one bad event must not cost the events behind it.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxis.ami.message import Message
from pbxis.ami.parser import NEED_DATA, AMIParser, RemoteProtocolError

_text = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=12
)
_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(str.strip)
messages = st.lists(
    st.lists(st.tuples(_text, _value), min_size=1, max_size=5).map(
        lambda pairs: Message([("Event", "Probe"), *pairs])
    ),
    min_size=1,
    max_size=5,
)
# Damage without a blank line inside, so it spoils exactly one frame.
damage = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))


@settings(max_examples=200, deadline=None)
@given(before=messages, bad=damage, after=messages, chunk=st.integers(1, 40))
def test_valid_messages_after_a_damaged_one_still_parse(
    before: list[Message], bad: bytes, after: list[Message], chunk: int
) -> None:
    wire = b"".join(m.to_bytes() for m in before) + bad + b"\r\n\r\n"
    wire += b"".join(m.to_bytes() for m in after)
    parser = AMIParser(expect_banner=False)
    out: list[Message] = []
    try:
        for i in range(0, len(wire), chunk):
            parser.receive_data(wire[i : i + chunk])
            while (item := parser.next_event()) is not NEED_DATA:
                assert isinstance(item, Message)
                out.append(item)
    except RemoteProtocolError:
        # Allowed only if the damage itself opened a ``Response: Follows`` block.
        assert bad.lstrip().lower().startswith(b"response:")
        return
    probes = [m for m in out if m.get("Event") == "Probe" and m.headers[0] == ("Event", "Probe")]
    expected = [*before, *after]
    # The damaged frame may itself parse as a message; every valid one is there, in order.
    it = iter(probes)
    assert all(any(got.headers == want.headers for got in it) for want in expected)
