"""Kezek's benchmarks: the rush of parents, the aiogram floor, and the push outbox.

`python -m bench` (or `python3 tasks.py bench`) runs them and writes docs/performance.md.
Nothing here is imported by the bot; the benchmarks drive the real parts (Dispatcher, SQLite,
the sandbox over loopback HTTP) and fake only Telegram.
"""
