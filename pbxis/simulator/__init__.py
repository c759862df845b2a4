"""A simulated Asterisk call center speaking AMI over TCP, for tests and the demo.

It reproduces the lab the captures in ``shared/ami/captures`` were recorded with
(chan_sip phones 1001-1003 with hints in context ``agents``, 1009 always busy, queues
``sales`` (ringall, static member SIP/1003) and ``support`` (rrmemory), MixMonitor
recording), and answers actions and emits events field for field and in the order
Asterisk 20 does; with the ``ASTERISK_22`` personality the same lab on Asterisk 22 with
PJSIP endpoints (``PJSIP/1001``...), as ``shared/ami/captures-pjsip22`` shows it. Usage::

    from pbxis.simulator import Simulator, SimulatorConfig
    from pbxis.simulator.personality import ASTERISK_22

    config = SimulatorConfig.lab()   # or SimulatorConfig.demo(agents=[...], queues=[...])
    config = SimulatorConfig.lab(ASTERISK_22)   # Asterisk 22, PJSIP (demo(personality=...))
    sim = Simulator(config, clock=reactor_or_task_Clock, seed=0,
                    username="pbxis", secret="pbxis-secret")
    port = reactor.listenTCP(0, sim.factory, interface="127.0.0.1")

    # driving calls (deterministic; time advances with the clock)
    uid = sim.customer_call("sales", number="385911234567", name="Customer",
                            talk_time=3.0, max_wait=60.0)       # -> caller Uniqueid
    sim.set_phone("1001", "answer")   # "answer" (after ring_delay), "busy", "no_answer", "unavailable"
    sim.set_number("0911234567", "busy")                        # the far end of click-to-call
    sim.hold("1001"); sim.unhold("1001"); sim.hangup_agent("1001")
    sim.queue_add("sales", "SIP/1002", name="Agent 1002", paused=False)
    sim.queue_remove("sales", "SIP/1002"); sim.queue_pause("SIP/1002", True, reason="Lunch")

    # races real Asterisk loses now and then (20 and 22): AgentComplete after the
    # caller's channel is gone, without Channel/Uniqueid/CallerID* (22's flows)
    sim.pbx.late_agent_complete = True

    # faults
    sim.drop_connections(mid_message=False)
    sim.restart(clean=True, keep_dynamic_members=True)
    sim.stall(True); sim.stall(False)
    sim.send_garbage(b"...")

    # demo load
    sim.login_agents(); sim.start_load(rate_per_minute=6, talk_time=(20, 60)); sim.stop_load()

    sim.sessions   # connected AMISession objects: .filters, .mask, .received (actions)
    sim.history    # every event published, before per-session filtering

Modules, one job each:

* wire: ``session`` (the Twisted protocol and factory);
* actions: ``context`` (the narrow seams handlers and sessions see, instead of the
  façade), ``actions`` (the action table and routing, Login/Filter/Events...),
  ``queue_actions``, ``channel_actions``, ``sip_actions`` (chan_sip's),
  ``pjsip_actions`` (res_pjsip's), ``originate``,
  ``replies`` (response and list layout), ``filters`` (event masks and the Filter
  action, pure). A new action is a handler ``(ctx, session, msg) -> Reply`` in its
  own module's ``ACTIONS`` table, merged by ``actions.action_table``;
* model: ``pbx`` (state, identifiers, device state), ``model``, ``headers`` (how
  channels and members print), ``codes`` (Asterisk's numeric vocabularies),
  ``personality`` (what changes from Asterisk 20/chan_sip to 22/PJSIP);
* call flows: ``flow`` (shared bits), ``customer``, ``click2call``, ``center``
  (app_queue distribution);
* ``simulator`` (the façade and the faults), ``load`` (demo traffic), ``config``,
  ``__main__`` (``python -m pbxis.simulator`` / ``pbxis-simulator``).
"""

from .config import MemberConfig, PhoneConfig, QueueConfig, SimulatorConfig
from .pbx import MemberError
from .session import AMIServerFactory, AMISession
from .simulator import Simulator

__all__ = [
    "AMIServerFactory",
    "AMISession",
    "MemberConfig",
    "MemberError",
    "PhoneConfig",
    "QueueConfig",
    "Simulator",
    "SimulatorConfig",
]
