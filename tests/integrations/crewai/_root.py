"""Re-export of the shared test helpers (kept for the CrewAI test modules' imports)."""

from testsupport import PYTHON, ROOT, client_env

__all__ = ["PYTHON", "ROOT", "client_env"]
