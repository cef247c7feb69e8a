"""``mailslot mq9``: the mq9 protocol gateway of package ``mailslot-mq9`` (``mailslot mq9
--url ...`` is ``mailslot-mq9 --url ...``). The SDK does not depend on that package: it is
imported only when the command runs, and its own parser reads the arguments."""

from __future__ import annotations

from ._member import member_command

member_command(
    "mq9",
    doc="RobustMQ mq9 gateway: `$mq9.AI.*` served on Mailslot (replicas share the work). Needs mailslot-mq9.",
    package="mailslot-mq9",
    module="mailslot_mq9.__main__",
    roots=("mailslot_mq9",),
)
