"""Shared stores behind the hub's store interface (:mod:`pbxis.hub.store`): Redis (issue #15).

:mod:`.redis_link` keeps the connection; :mod:`.redis_keys` names every key;
:mod:`.redis_scripts` holds the Lua that makes each multi-key change atomic; the pieces
built on them (registrations, logs, agent state, grace bookkeeping, the read loop,
commands between nodes, the outage buffer) each have their own module.
"""
