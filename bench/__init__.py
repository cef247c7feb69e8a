"""Mailslot benchmarks: every figure side by side with raw nats-py, same run, same server.

Run ``python -m bench`` (``make bench``) or ``python -m bench --quick``. See ``bench/README.md``.
"""
