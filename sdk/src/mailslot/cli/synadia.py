"""``mailslot synadia``: the Synadia Agent Protocol bridge of package ``mailslot-synadia``.

The SDK does not depend on that package (nor on the Synadia SDKs): it is imported only when the
command runs, and its own parser reads the arguments (``bridge --owner ...``).
"""

from __future__ import annotations

from ._member import member_command

member_command(
    "synadia",
    doc="Synadia Agent Protocol bridge: `bridge` runs it. Needs mailslot-synadia.",
    package="mailslot-synadia",
    module="mailslot_synadia.__main__",
    roots=("mailslot_synadia", "synadia_ai"),
)
