"""``import mailslot`` loads the client, not the server side: no sidecar, no prometheus-client.

The SDK once imported the sidecar's dead-letter module for two header helpers, and with it the
whole sidecar and prometheus-client. The helpers now live in :mod:`mailslot_broker.deadletters`.
"""

from __future__ import annotations

import json
import subprocess

from testsupport import PYTHON

CHECK = (
    "import json, sys, mailslot, mailslot.sync; "
    "print(json.dumps(sorted(m for m in sys.modules "
    "if m.startswith(('mailslot_broker.sidecar', 'prometheus_client')))))"
)


def test_import_mailslot_leaves_the_sidecar_out() -> None:
    out = subprocess.run([PYTHON, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == []
