"""For Mailslot agents answering bridged prompts: stream chunks and ask the protocol caller
mid-stream. A plain ``msg.reply(text)`` works too; this adds what a single reply cannot say."""

from __future__ import annotations

from typing import Any

import mailslot

from . import naming as n
from .errors import SynadiaBridgeError


class PromptMail:
    """A prompt that came by mail from a protocol caller, with the ways back to it.

    >>> pm = PromptMail(msg, mailbox)
    >>> await pm.send("partial answer ")          # a ``response`` chunk, now
    >>> yes = await pm.ask("Delete it?", timeout=30)  # a ``query`` chunk; the caller's answer
    >>> await pm.finish("done")                  # the last chunk, then the stream ends
    """

    def __init__(self, msg: mailslot.Message, mailbox: mailslot.Mailbox) -> None:
        bridge = msg.headers.get(n.H_BRIDGE)
        if not bridge or not msg.correlation_id:
            raise SynadiaBridgeError(f"message {msg.id} is not a bridged prompt")
        self.msg = msg
        self.mailbox = mailbox
        self.bridge = bridge
        body: Any = msg.json()
        self.body: dict[str, Any] = body if isinstance(body, dict) else {"prompt": str(body)}
        self.chunks = 0

    @property
    def prompt(self) -> str:
        return str(self.body.get("prompt", ""))

    @property
    def trust(self) -> str:
        """``verified``, ``claimed`` or ``anonymous``: how far the caller's identity is proven."""
        return self.msg.headers.get(n.H_TRUST, "anonymous")

    async def send(self, text: str) -> None:
        await self.mailbox.send(self.bridge, {"chunk": text}, thread_id=self.msg.correlation_id)
        self.chunks += 1

    async def ask(self, question: str, *, timeout: float) -> str:
        reply = await self.mailbox.ask(
            self.bridge,
            {"query": question, "timeout": timeout},
            thread_id=self.msg.correlation_id,
            timeout=timeout + 5.0,
        )
        body = reply.json()
        if not isinstance(body, dict) or "answer" not in body:
            raise SynadiaBridgeError(f"no answer: {body}")
        return str(body["answer"])

    async def finish(self, text: str = "") -> None:
        """The final reply (after the chunks sent so far), then ``ack`` the prompt."""
        await self.msg.reply({"text": text}, headers={n.H_CHUNKS: str(self.chunks)})
        await self.msg.ack()
