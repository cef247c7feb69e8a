"""``mailslot console``: a local web page over a JSON + Server-Sent Events API (Starlette,
uvicorn, sse-starlette: the ``mailslot[console]`` extra, imported only when the command runs).

:mod:`.hub` keeps what the page shows current from the SDK's push feeds; :mod:`.api` serves
it behind a token; ``static/`` is the page itself (plain JavaScript, no build step).
"""

from __future__ import annotations

from .api import CSRF_HEADER, build_app, serve
from .hub import Hub

__all__ = ["CSRF_HEADER", "Hub", "build_app", "serve"]
