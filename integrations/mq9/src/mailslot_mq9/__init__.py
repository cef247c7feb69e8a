"""RobustMQ's mq9 Agent Mailbox protocol, served over Mailslot."""

__all__: list[str] = []
