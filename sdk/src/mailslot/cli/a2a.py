"""``mailslot a2a``: the A2A HTTP front of package ``mailslot-a2a``, from the SDK's command line.

The SDK does not depend on that package (nor on ``a2a-sdk``): it is imported only when the
command runs, and its own parser reads the arguments (``serve --http HOST:PORT`` ...).
"""

from __future__ import annotations

from ._member import member_command

#: The distribution that provides the front, and its module.
PACKAGE = "mailslot-a2a"
MODULE = "mailslot_a2a.__main__"

member_command(
    "a2a",
    doc="A2A over Mailslot: `serve --http HOST:PORT` runs the A2A HTTP front. Needs mailslot-a2a.",
    package=PACKAGE,
    module=MODULE,
    roots=("mailslot_a2a", "a2a"),
)
