"""The simulated Asterisk keeps app_queue's counters the way app_queue does.

The supervisors' counters are Asterisk's own (QueueParams), so the simulator must move
them at the same moments and with the same arithmetic (apps/app_queue.c:
``recalc_holdtime`` at the answer, ``update_queue`` at the hang-up,
``record_abandoned``, ``sl``/``sl2`` in ``manager_queues_status``).
"""

from __future__ import annotations

from twisted.internet.task import Clock

from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser
from pbxis.simulator import Simulator, SimulatorConfig
from pbxis.simulator.model import QueueState
from pbxis.simulator.queue_actions import _perf, _perf2, queue_status, queue_summary
from tests.support.shared import captures_dir


def test_hold_time_moves_at_the_answer_talk_time_at_the_hang_up() -> None:
    q = QueueState("support", "rrmemory", 15.0, 5.0)
    q.record_connected(8)
    assert (q.holdtime, q.talktime, q.completed) == (2, 0, 0)  # (0 * 3 + 8) / 4
    q.record_completed(8, 12)
    assert (q.holdtime, q.talktime, q.completed, q.within_sl) == (2, 3, 1, 1)
    q.record_connected(30)
    q.record_completed(30, 40)
    assert (q.holdtime, q.talktime, q.completed, q.within_sl) == (9, 12, 2, 1)
    assert _perf(q) == "50.0"


def test_service_level_perf2_counts_quick_abandons_as_met() -> None:
    q = QueueState("support", "rrmemory", 15.0, 5.0)
    assert (_perf(q), _perf2(q)) == ("0.0", "0.0")
    q.record_connected(3)
    q.record_completed(3, 10)
    q.record_abandoned(8)  # within the 20 s service level
    assert (q.abandoned, q.abandoned_within_sl) == (1, 1)
    assert (_perf(q), _perf2(q)) == ("100.0", "100.0")  # as the state dump capture shows
    q.record_abandoned(45)
    assert (_perf(q), _perf2(q)) == ("100.0", "66.7")


def test_queue_params_and_summary_have_asterisks_fields_in_asterisks_order() -> None:
    parser = AMIParser()
    parser.receive_data((captures_dir() / "state_dump.client.ami").read_bytes())
    real = [m for m in parser.messages() if isinstance(m, Message)]
    sim = Simulator(SimulatorConfig.demo(agents=["1001"], queues=["support"]), clock=Clock(), seed=1)
    for action, item in (("QueueStatus", "QueueParams"), ("QueueSummary", "QueueSummary")):
        handler = queue_status if action == "QueueStatus" else queue_summary
        request = Message({"Action": action, "Queue": "support", "ActionID": "x"})
        ours = next(m for m in handler(sim, None, request).messages if m.event == item)  # type: ignore[arg-type]
        theirs = next(m for m in real if m.event == item)
        assert ours.keys() == theirs.keys(), item
