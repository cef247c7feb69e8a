"""CrewAI flow state in the SDK's state store, so a paused flow resumes on any machine.

CrewAI persists flow state with ``SQLiteFlowPersistence``: a file, so a flow paused on one host
can only be resumed where that file is. :class:`MailslotFlowPersistence` keeps the same records
in ``ms.state(namespace)`` (one KV bucket on the broker, replicated like the mail):

* ``("flow", <flow id>)``: the latest state saved after a method, ``{"v", "method", "state"}``;
* ``("pending", <flow id>)``: a flow paused for feedback, ``{"v", "context", "state"}``.

Only the latest state per flow is kept (SQLite appends a row per method, but CrewAI only ever
reads the newest). A pending record is created with the pause and removed by the resume that
consumed it.

Sizes: a record is the flow's state as JSON (plus, when paused, the feedback context: the
method's output and the question). It must fit in ``store.max_value_size`` (the broker's max
payload less the key and headers; about 1 MiB by default). A larger one raises
``mailslot.StateTooLarge`` and nothing is written: the pause fails in ``kickoff()`` instead of
leaving a flow nobody could resume (the question was mailed before CrewAI saves; its answer then
finds no paused flow). Keep large artefacts out of the state (store a reference).

CrewAI calls persistence synchronously, also from inside ``kickoff_async`` on the caller's
event loop (as ``SQLiteFlowPersistence`` blocks it, so does this). The sync twin refuses to
block a running loop, so there each call runs on a worker thread (:func:`off_loop`) and the
loop's thread waits for it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from crewai.flow.persistence.base import FlowPersistence
from mailslot import sync
from mailslot.sync import SyncMailbox, SyncMailslot, SyncStateStore
from pydantic import BaseModel, Field, PrivateAttr

if TYPE_CHECKING:
    from crewai.flow.async_feedback.types import PendingFeedbackContext

#: State-store namespace flows are kept in by default.
DEFAULT_FLOW_STORE = "crewai"

_FORMAT = 1

SyncClientLike = SyncMailslot | SyncMailbox | Callable[[], SyncMailslot | SyncMailbox] | None

T = TypeVar("T")
_WORKERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mailslot-crewai")


def off_loop(fn: Callable[[], T]) -> T:
    """Run a sync-twin call where it may block: here, or, on a thread whose event loop is
    running (CrewAI calls providers and persistence synchronously inside ``kickoff_async``),
    on a worker thread while this one waits, as it would for SQLite."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    return _WORKERS.submit(fn).result()


def _json_default(obj: Any) -> Any:
    """What SQLiteFlowPersistence does for values JSON does not know, so both store alike."""
    if isinstance(obj, BaseModel):
        try:
            return obj.model_dump(mode="json")
        except Exception:
            return obj.model_dump(mode="python")
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, (date, datetime)):
        return obj.isoformat()
    return str(obj)


def _state_dict(state_data: dict[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(state_data, BaseModel):
        try:
            return state_data.model_dump(mode="json")
        except Exception:
            return state_data.model_dump(mode="python")
    if isinstance(state_data, dict):
        return state_data
    raise ValueError(f"state_data must be either a Pydantic BaseModel or dict, got {type(state_data)}")


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps({"v": _FORMAT, **doc}, default=_json_default).encode()


class MailslotFlowPersistence(FlowPersistence):
    """A ``FlowPersistence`` on the broker's state store (see the module docstring).

    ``client`` is a sync client or mailbox, a factory for one, or None to connect with
    :func:`mailslot.sync.connect` defaults (``MAILSLOT_URL`` / ``MAILSLOT_CREDENTIALS``) on
    first use; a client it connected itself is closed by :meth:`close`. ``namespace`` is the
    state-store namespace (flows of different applications can share one). The instance
    serializes as ``{"persistence_type", "namespace"}``, and CrewAI rebuilds it from that
    with a client from the defaults.
    """

    persistence_type: str = Field(default="MailslotFlowPersistence")
    namespace: str = Field(default=DEFAULT_FLOW_STORE)
    _client: Any = PrivateAttr(default=None)
    _owned: SyncMailslot | None = PrivateAttr(default=None)
    _store: SyncStateStore | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, client: SyncClientLike = None, /, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client = client

    @property
    def store(self) -> SyncStateStore:
        """The state store, connecting on first use: a persistence is often made when a flow
        class is defined, long before (and in processes where) it is used."""
        with self._lock:
            if self._store is None:
                c = self._client
                if c is None:
                    c = self._owned = sync.connect(name="crewai-flows")
                elif callable(c) and not isinstance(c, (SyncMailslot, SyncMailbox)):
                    c = c()
                if isinstance(c, SyncMailbox):
                    c = SyncMailslot(c.aio.client)
                self._store = c.state(self.namespace)
            return self._store

    def close(self) -> None:
        """Close the client this persistence connected itself (not one it was given)."""
        with self._lock:
            owned, self._owned, self._store = self._owned, None, None
        if owned is not None:
            off_loop(owned.close)

    def init_db(self) -> None:
        """Nothing to create: the state store's bucket is made on first use."""

    def save_state(self, flow_uuid: str, method_name: str, state_data: dict[str, Any] | BaseModel) -> None:
        data = _encode({"method": method_name, "state": _state_dict(state_data)})
        off_loop(lambda: self.store.put(("flow", flow_uuid), data))

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        entry = off_loop(lambda: self.store.get(("flow", flow_uuid)))
        if entry is None:
            return None
        state = json.loads(entry.value).get("state")
        return state if isinstance(state, dict) else None

    def save_pending_feedback(
        self, flow_uuid: str, context: PendingFeedbackContext, state_data: dict[str, Any] | BaseModel
    ) -> None:
        state = _state_dict(state_data)
        pending = _encode({"context": context.to_dict(), "state": state})
        latest = _encode({"method": context.method_name, "state": state})

        def write() -> None:  # the pending record first: if it is too large nothing is written
            self.store.put(("pending", flow_uuid), pending)
            self.store.put(("flow", flow_uuid), latest)

        off_loop(write)

    def load_pending_feedback(self, flow_uuid: str) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        from crewai.flow.async_feedback.types import PendingFeedbackContext

        entry = off_loop(lambda: self.store.get(("pending", flow_uuid)))
        if entry is None:
            return None
        doc = json.loads(entry.value)
        return doc["state"], PendingFeedbackContext.from_dict(doc["context"])

    def clear_pending_feedback(self, flow_uuid: str) -> None:
        off_loop(lambda: self.store.delete(("pending", flow_uuid)))

    def pending(self) -> list[str]:
        """Ids of the flows paused for feedback (a view SQLite has only through SQL)."""
        return [key[1] for key in off_loop(lambda: self.store.keys(("pending",)))]

    def delete(self, flow_uuid: str) -> None:
        """Forget one flow: its state and any pending feedback."""

        def drop() -> None:
            self.store.delete(("pending", flow_uuid))
            self.store.delete(("flow", flow_uuid))

        off_loop(drop)


__all__ = ["DEFAULT_FLOW_STORE", "MailslotFlowPersistence", "off_loop"]
