"""Which Asterisk the simulator plays: version, channel driver and what follows from them.

Two personalities, each backed by a set of captures of the same lab scenarios:

* ``ASTERISK_20`` (20.20.1, chan_sip phones), ``shared/ami/captures``;
* ``ASTERISK_22`` (22.10.1, PJSIP endpoints), ``shared/ami/captures-pjsip22``.
  chan_sip was removed in Asterisk 21, so 22 comes with PJSIP only; 20 with PJSIP
  has no captures to be faithful to and is not offered.

Every difference the flows and actions make between the two is a field here, named
for what the captures show, so a reader finds in one place what changes from 20 to 22.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ASTERISK_20", "ASTERISK_22", "PERSONALITIES", "Personality", "personality"]


@dataclass(frozen=True)
class Personality:
    """The facts of one Asterisk version + channel driver the simulator reproduces."""

    #: the major version (``[simulator] asterisk``, ``--asterisk``)
    asterisk: str
    #: ``CoreSettings`` AsteriskVersion
    version: str
    #: the banner's and ``CoreSettings`` AMIversion (manager.c's AMI_VERSION)
    ami_version: str
    #: the phones' and the trunk's channel technology (``SIP`` or ``PJSIP``)
    tech: str
    #: a phone that answers 486 at once still goes RINGING while the INVITE is out
    #: (chan_sip); PJSIP goes from NOT_INUSE to NOT_INUSE: no ExtensionStatus at all
    busy_phone_rings: bool
    #: OriginateResponse Reason for a phone that said 486: 5 (busy) on chan_sip; on 22
    #: 0, after a HangupRequest, with busy only in DialEnd BUSY / Hangup Cause 17
    originate_busy_reason: int
    #: Hangup and HangupRequest carry ``TechCause`` (the SIP response, 486/480) for a
    #: non-normal clearing: PJSIP sets it (20.17/22.7+), chan_sip never does
    tech_cause: bool
    #: how the ``_X.`` dialplan dials the trunk: ``pstn/<number>`` (chan_sip's
    #: ``SIP/pstn/<number>``) or ``<number>@pstn`` (PJSIP's ``PJSIP/<number>@pstn``)
    trunk_at: bool
    #: an originated channel starts at ``Exten: s`` (22) rather than an empty Exten (20)
    originate_exten_s: bool
    #: on an outbound call the agent's ConnectedLine becomes the dialled number (22)
    connected_line_to_dialled: bool
    #: at boot Asterisk 20 sends VarSet of the globals and an ExtensionStatus with an
    #: empty Hint per hint (before FullyBooted); 22 sends neither
    boot_hint_status: bool
    #: a phone's device state reaches the hint, the manager and app_queue as separate
    #: steps between the channel events (22, :meth:`.pbx.PBX.settle`), rather than
    #: chan_sip's burst with a second RINGING when the phone reports 180 (20)
    stepwise_device_state: bool

    @property
    def device_prefix(self) -> str:
        return f"{self.tech}/"

    @property
    def banner(self) -> bytes:
        return f"Asterisk Call Manager/{self.ami_version}\r\n".encode("ascii")


ASTERISK_20 = Personality(
    asterisk="20",
    version="20.20.1",
    ami_version="9.0.0",
    tech="SIP",
    busy_phone_rings=True,
    originate_busy_reason=5,
    tech_cause=False,
    trunk_at=False,
    originate_exten_s=False,
    connected_line_to_dialled=False,
    boot_hint_status=True,
    stepwise_device_state=False,
)
ASTERISK_22 = Personality(
    asterisk="22",
    version="22.10.1",
    ami_version="11.0.0",
    tech="PJSIP",
    busy_phone_rings=False,
    originate_busy_reason=0,
    tech_cause=True,
    trunk_at=True,
    originate_exten_s=True,
    connected_line_to_dialled=True,
    boot_hint_status=False,
    stepwise_device_state=True,
)
PERSONALITIES: dict[tuple[str, str], Personality] = {("20", "sip"): ASTERISK_20, ("22", "pjsip"): ASTERISK_22}


def personality(asterisk: str = "20", tech: str | None = None) -> Personality:
    """The personality for ``asterisk`` (``"20"``/``"22"``) and ``tech`` (``sip``/``pjsip``).

    ``tech`` defaults to the version's own driver. Raises ``ValueError`` naming what
    exists for any other combination.
    """
    major = asterisk.split(".", 1)[0].strip()
    driver = (tech or ("sip" if major == "20" else "pjsip")).strip().lower()
    found = PERSONALITIES.get((major, driver))
    if found is not None:
        return found
    if driver == "sip" and major.isdigit() and int(major) >= 21:
        raise ValueError(f"chan_sip is gone from Asterisk 21 on: Asterisk {major} runs PJSIP")
    offered = ", ".join(f"Asterisk {v} with {t}" for v, t in PERSONALITIES)
    raise ValueError(f"no simulated Asterisk {major} with {driver}; there is {offered}")
