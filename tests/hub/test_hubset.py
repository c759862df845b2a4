"""Several PBXes' hubs as one token space (pbxis.hub.hubs.HubSet), driven with a Clock."""

from __future__ import annotations

import pytest_twisted
from twisted.internet.task import Clock

from pbxis.hub import Hub, Registration
from pbxis.hub.hubs import HubSet
from pbxis.hub.memory import MemoryStore


class LateStore(MemoryStore):
    """A follower's behaviour: a token issued on another node is found only by asking the
    shared store (``find_token``), which here knows one registration this hub has not seen."""

    def __init__(self, hub_of: list[Hub], agent: str | None) -> None:
        super().__init__()
        self.hub_of = hub_of
        self.agent = agent
        self.asked = 0

    async def find_token(self, token: str) -> Registration | None:
        self.asked += 1
        hub = self.hub_of[0]
        if token != "issued-elsewhere" or self.agent is None:
            return None
        return hub.register(self.agent, ("sales",), None)


def hub(clock: Clock, store: MemoryStore, pbx: str) -> Hub:
    return Hub(clock, grace_period=30, snapshot=lambda agent: [], store=store, pbx=pbx)


@pytest_twisted.ensureDeferred
async def test_a_token_no_hub_knows_yet_is_asked_of_every_pbx_store() -> None:
    clock = Clock()
    east_of: list[Hub] = []
    west_of: list[Hub] = []
    east_store, west_store = LateStore(east_of, None), LateStore(west_of, "2001")
    east, west = hub(clock, east_store, "east"), hub(clock, west_store, "west")
    east_of.append(east)
    west_of.append(west)
    local = east.register("1001", ("sales",), None)
    hubs = HubSet([east, west])
    # known here: no question to Redis
    assert await hubs.lookup(local.token) is local and east_store.asked == west_store.asked == 0
    # issued on another web node for a west agent: found through west's store
    found = await hubs.lookup("issued-elsewhere")
    assert found is not None and found.agent == "2001" and west.get("2001") is found
    assert east_store.asked == west_store.asked == 1
    # nobody's: None, not an error
    assert await hubs.lookup("nobody") is None
