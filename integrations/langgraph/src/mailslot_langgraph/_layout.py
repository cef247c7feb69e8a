"""How checkpoints sit in the state store: keys and the bytes of each record.

Four kinds of key in the checkpointer's namespace (``ms.state(namespace)``), each segment a
LangGraph identifier prefixed with ``~`` so that the root namespace ``""`` is a valid
(non-empty) segment:

- ``("c", thread, ns, checkpoint_id)``: the checkpoint without its channel values, its
  metadata and its parent's id;
- ``("b", thread, ns, channel, version)``: one channel's value at one version (a blob, as the
  Postgres saver keeps them): a checkpoint stores only the channels that changed;
- ``("w", thread, ns, checkpoint_id, task_id, idx)``: one pending write;
- ``("h", thread, ns)``: the id of the newest checkpoint (the head), advanced with
  revision-checked writes, so the latest checkpoint is two reads, not a scan of the thread.

Kind first, so ``list()`` over every thread reads only checkpoint records, and deleting a
thread is one purge per kind. Records are msgpack maps of the serde's typed bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ormsgpack

CHECKPOINT = "c"
BLOB = "b"
WRITE = "w"
HEAD = "h"
KINDS = (BLOB, WRITE, CHECKPOINT, HEAD)  # in the order a copy writes them
EMPTY = "empty"


def seg(value: Any) -> str:
    return "~" + str(value)


def unseg(segment: str) -> str:
    return segment[1:]


def checkpoint_key(thread: str, ns: str, checkpoint_id: str) -> tuple[str, ...]:
    return (CHECKPOINT, seg(thread), seg(ns), seg(checkpoint_id))


def blob_key(thread: str, ns: str, channel: str, version: Any) -> tuple[str, ...]:
    return (BLOB, seg(thread), seg(ns), seg(channel), seg(version))


def write_key(thread: str, ns: str, checkpoint_id: str, task_id: str, idx: int) -> tuple[str, ...]:
    return (WRITE, seg(thread), seg(ns), seg(checkpoint_id), seg(task_id), seg(idx))


def head_key(thread: str, ns: str) -> tuple[str, ...]:
    return (HEAD, seg(thread), seg(ns))


def prefix(kind: str, *parts: str) -> tuple[str, ...]:
    return (kind, *(seg(p) for p in parts))


@dataclass(frozen=True)
class CheckpointRecord:
    thread: str
    ns: str
    checkpoint_id: str
    checkpoint: tuple[str, bytes]
    metadata: tuple[str, bytes]
    parent_id: str | None

    def dumps(self) -> bytes:
        return ormsgpack.packb({"c": list(self.checkpoint), "m": list(self.metadata), "p": self.parent_id})

    @classmethod
    def loads(cls, key: tuple[str, ...], data: bytes) -> CheckpointRecord:
        d = ormsgpack.unpackb(data)
        _, thread, ns, cid = key
        return cls(unseg(thread), unseg(ns), unseg(cid), tuple(d["c"]), tuple(d["m"]), d["p"])


@dataclass(frozen=True)
class WriteRecord:
    task_id: str
    idx: int
    channel: str
    value: tuple[str, bytes]
    task_path: str

    def dumps(self) -> bytes:
        return ormsgpack.packb(
            {"t": self.task_id, "i": self.idx, "c": self.channel, "v": list(self.value), "p": self.task_path}
        )

    @classmethod
    def loads(cls, data: bytes) -> WriteRecord:
        d = ormsgpack.unpackb(data)
        return cls(d["t"], d["i"], d["c"], tuple(d["v"]), d["p"])

    def sort_key(self) -> tuple[str, str, int]:
        return (self.task_path, self.task_id, self.idx)


def dumps_blob(typed: tuple[str, bytes]) -> bytes:
    return ormsgpack.packb(list(typed))


def loads_blob(data: bytes) -> tuple[str, bytes]:
    t, v = ormsgpack.unpackb(data)
    return t, v


def key_thread(key: tuple[str, ...]) -> str:
    """The thread id of any of the three kinds of key."""
    return unseg(key[1])
