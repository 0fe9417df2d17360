"""Where the rush's time goes: a pyinstrument profile summed by library and by our functions.

pyinstrument samples the event loop's thread only: SQLite's work in aiosqlite's threads shows as
the waits for it, and the sandbox (its own process) not at all.
"""

from __future__ import annotations

import collections
from typing import Any

# First match wins: (category, a piece of the file path).
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("bench harness", "/bench/"),
    ("Telegram stand-in (bot/local_session.py, local_chat.py)", "/bot/local_"),
    ("httpx / httpcore / anyio (voucher client transport)", "/httpx/"),
    ("httpx / httpcore / anyio (voucher client transport)", "/httpcore/"),
    ("httpx / httpcore / anyio (voucher client transport)", "/anyio/"),
    ("httpx / httpcore / anyio (voucher client transport)", "/h11/"),
    ("aiohttp (parents' phones, harness)", "/aiohttp/"),
    ("pydantic", "/pydantic"),
    ("aiogram", "/aiogram/"),
    ("aiosqlite (hops to SQLite's thread)", "/aiosqlite/"),
    ("fluent (translations)", "/fluent"),
    ("our code: bot/", "/bot/"),
    ("our code: services/", "/services/"),
    ("waiting in epoll (idle: I/O, SQLite's threads, the sandbox)", "/selectors.py"),
    ("waiting in epoll (idle: I/O, SQLite's threads, the sandbox)", "<built-in>epoll"),
    ("asyncio event loop", "/asyncio/"),
    ("json", "/json/"),
)


def category(file_path: str | None) -> str:
    path = file_path or ""
    for name, piece in CATEGORIES:
        if piece in path:
            return name
    return "other (stdlib, C code)" if path else "C code / unknown"


def summarize(session: Any, *, top: int = 25) -> str:
    """Self time by library and the functions with the most self time, as Markdown lists.

    Time in the standard library or in C (a socket call, `epoll`, the JSON encoder) is charged
    to the nearest caller that belongs to a library or to our code: "httpx" includes the
    sockets and URL parsing httpx asks for, "waiting in epoll" is the loop with nothing to run.
    """
    root = session.root_frame()
    if root is None:
        return "(empty profile)"
    by_category: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = 0.0
    stack: list[tuple[Any, str]] = [(root, "other (stdlib, C code)")]
    while stack:
        frame, owner = stack.pop()
        if frame.is_synthetic:
            continue  # "[self]" and await frames: counted in their parent's total_self_time
        own_category = category(frame.file_path)
        if not own_category.startswith(("other", "C code")):
            owner = own_category
        stack.extend((child, owner) for child in frame.children)
        own = frame.total_self_time
        if own <= 0:
            continue
        total += own
        by_category[owner] += own
        where = (frame.file_path or "?").split("site-packages/")[-1].split("/work/main/")[-1]
        by_function[f"{frame.function} ({where}:{frame.line_no})"] += own
    lines = [f"Sampled {total:.1f} s of the event loop's thread.", "", "By library (self time):"]
    lines += [f"- {share / total:6.1%}  {name}" for name, share in by_category.most_common()]
    lines += ["", f"Top {top} functions by self time:"]
    lines += [f"- {share / total:6.1%}  {name}" for name, share in by_function.most_common(top)]
    return "\n".join(lines)
