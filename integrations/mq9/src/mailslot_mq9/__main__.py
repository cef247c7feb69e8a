"""``mailslot-mq9``: run the mq9 gateway."""


def main() -> None:
    raise SystemExit("mailslot-mq9: not built yet")
