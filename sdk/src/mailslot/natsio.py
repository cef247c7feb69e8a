"""The nats-py types behind ``Mailslot.nc``, for integrations whose peers speak plain core
NATS (the Synadia Agent Protocol SDKs take a nats-py connection): they type and catch through
the SDK, so the SDK stays the one layer that knows nats-py."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import NoRespondersError

__all__ = ["NatsClient", "NatsMsg", "NatsSubscription", "NoRespondersError"]
