"""The integration's exceptions: one tree, so callers can catch everything it raises."""

from __future__ import annotations


class MailslotLangGraphError(Exception):
    """Base of every error mailslot-langgraph raises itself."""


class CheckpointTooLarge(MailslotLangGraphError, ValueError):
    """One stored part of a checkpoint (the checkpoint record, one channel's value, or one
    pending write) is larger than the state store accepts. Nothing of that ``put`` /
    ``put_writes`` was written, so the thread's last good checkpoint is still its latest.

    ``part`` names it (``"checkpoint"``, ``"channel <name>"`` or ``"write <channel>"``);
    ``size`` and ``limit`` are bytes."""

    def __init__(self, *, thread_id: str, checkpoint_ns: str, part: str, size: int, limit: int) -> None:
        super().__init__(
            f"{part} of thread {thread_id!r} (namespace {checkpoint_ns!r}) is {size} bytes "
            f"serialized; the state store takes at most {limit} bytes per value. Keep large "
            "data out of graph state (store it elsewhere, keep a reference), or raise the "
            "server's max_payload"
        )
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.part = part
        self.size = size
        self.limit = limit
