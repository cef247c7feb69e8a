"""Console entry point (placeholder until the server lands)."""


def main() -> None:
    raise SystemExit("mailslot-mcp: not built yet")
