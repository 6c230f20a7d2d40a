"""Closed tabs' sessions are shut down once their reconnect window is over (issue 17).

Oracle: Streamlit's own session storage (its ``MemorySessionStorage`` and TTL cache,
on a clock the test moves): what it still holds, and which sessions were shut down.
Measured in a server (tests/support/mem_probe.py): without this sweep, 6 closed tabs'
sessions, their uploads and media files were still held 40 s past a 10 s TTL.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

from streamlit.runtime import Runtime
from streamlit.runtime.caching.ttl_cache import TTLCache
from streamlit.runtime.memory_session_storage import MemorySessionStorage
from streamlit.runtime.session_manager import SessionInfo

from convviz.ui import server


class FakeSession:
    def __init__(self, sid: str) -> None:
        self.id = sid
        self.shut_down = 0

    def shutdown(self) -> None:
        self.shut_down += 1


def test_expired_closed_sessions_are_shut_down_and_the_others_kept(monkeypatch):
    now = [0.0]
    storage = MemorySessionStorage(ttl_seconds=10)
    storage._cache = TTLCache(maxsize=128, ttl=10, timer=lambda: now[0])  # a clock we move
    old, new = FakeSession("old"), FakeSession("new")
    storage.save(SessionInfo(client=None, session=old, script_run_count=1))
    now[0] = 8.0
    storage.save(SessionInfo(client=None, session=new, script_run_count=1))
    mgr = SimpleNamespace(_session_storage=storage, _storage_lock=threading.Lock())
    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(
        Runtime, "instance", staticmethod(lambda: SimpleNamespace(_session_mgr=mgr))
    )

    now[0] = 12.0  # "old" is past its 10 s, "new" is not
    assert server.free_closed_sessions() == 1
    assert (old.shut_down, new.shut_down) == (1, 0)
    assert list(storage._cache._data) == ["new"]  # gone from Streamlit's store, not only hidden
    assert [i.session.id for i in storage.list()] == ["new"]

    assert server.free_closed_sessions() == 0  # nothing expired since: nothing shut down twice
    now[0] = 30.0
    assert server.free_closed_sessions() == 1
    assert (old.shut_down, new.shut_down) == (1, 1) and not storage._cache._data


def test_without_a_runtime_nothing_happens(monkeypatch):
    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: False))
    assert server.free_closed_sessions() == 0


def test_the_sweeper_starts_once():
    server.tune_for_training()
    first = server._sweeper
    server.tune_for_training()
    assert first is not None and first is server._sweeper and first.is_alive()
