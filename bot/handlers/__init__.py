"""One router per step; `create_routers` gives them in the order the Dispatcher must try them.

Routers are built per Dispatcher (never at import) so that a restart in the same process, as
the tests do, attaches fresh routers to the new Dispatcher.
"""

from __future__ import annotations

from aiogram import Router

from bot.handlers import (
    choice,
    common,
    forget,
    identity,
    notifications,
    phone,
    review,
    staff,
    start,
    status,
)
from bot.handlers.routing import SkippingRouter
from bot.view import Prompt

_STEPS = (start, phone, identity, choice, notifications, review)


def create_routers() -> list[Router]:
    """The step routers in one SkippingRouter: each is offered only the events it may take."""
    return [SkippingRouter(*create_plain_routers())]


def create_plain_routers() -> list[Router]:
    """Every router, in the order aiogram must try them."""
    return [
        common.create_commands_router(),
        forget.create_router(),
        # Routers that own commands come before the unknown-command catcher.
        status.create_router(),
        staff.create_router(),
        common.create_unknown_command_router(),
        *(module.create_router() for module in _STEPS),
        common.create_fallback_router(),
    ]


def all_prompts() -> dict[str, Prompt]:
    prompts: dict[str, Prompt] = {}
    for module in (*_STEPS, status, staff):
        prompts.update(module.PROMPTS)
    return prompts
