"""Who is calling: the agent comes from the connection, never from a tool argument.

Over stdio the host spawns one server per agent and passes ``MAILSLOT_AGENT`` in its
environment. Over HTTP one server serves many agents, each request carries a bearer token,
and a token file maps tokens to agents:

    {"alice": "a-long-random-token", "bob": ["token-1", "token-2"]}

Tokens are compared by their SHA-256 digest in constant time and never appear in a result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from mailslot import InvalidInput, PermissionDenied
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

ENV_AGENT = "MAILSLOT_AGENT"
ENV_TOKENS = "MAILSLOT_MCP_TOKENS"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenStore:
    """Bearer tokens -> agents (the MCP SDK's ``TokenVerifier``)."""

    def __init__(self, tokens: dict[str, str | list[str]]) -> None:
        self._by_digest: list[tuple[bytes, str]] = []
        for agent, value in tokens.items():
            for token in [value] if isinstance(value, str) else value:
                if not isinstance(token, str) or len(token) < 16:
                    raise InvalidInput(f"the token of {agent!r} must be a string of at least 16 characters")
                self._by_digest.append((_digest(token), agent))
        if not self._by_digest:
            raise InvalidInput("the token file maps no agent")

    @classmethod
    def read(cls, path: str | Path) -> TokenStore:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read token file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"token file {path} must hold a JSON object of agent -> token(s)")
        return cls(data)

    def agent_of(self, token: str) -> str | None:
        d = _digest(token)
        found = None
        for digest, agent in self._by_digest:  # no early exit: same time for every token
            if hmac.compare_digest(digest, d):
                found = agent
        return found

    async def verify_token(self, token: str) -> AccessToken | None:
        agent = self.agent_of(token)
        if agent is None:
            return None
        return AccessToken(token="", client_id=agent, scopes=["mailslot"])


def agent_from_env() -> str:
    agent = os.environ.get(ENV_AGENT, "").strip()
    if not agent:
        raise SystemExit(f"mailslot-mcp: set {ENV_AGENT} to the agent's address (e.g. {ENV_AGENT}=coder)")
    return agent


class Identity:
    """Resolves the calling agent for a request: fixed (stdio) or from the bearer token (HTTP)."""

    def __init__(self, *, agent: str | None = None) -> None:
        self._agent = agent

    @property
    def fixed(self) -> str | None:
        return self._agent

    def current(self, request: Any = None) -> str:
        """``request`` is the HTTP request of the call, when there is one: its authenticated
        user is the fallback where the auth context variable did not reach the handler."""
        if self._agent is not None:
            return self._agent
        token = get_access_token()
        if token is None and request is not None:
            user = getattr(request, "scope", {}).get("user")
            token = getattr(user, "access_token", None)
        if token is None:  # the auth middleware lets no such request through
            raise PermissionDenied("this request carries no agent identity")
        return str(token.client_id)
