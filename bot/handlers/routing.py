"""Hand a message or a button press only to the routers that have a handler able to take it.

aiogram offers every event to each router in turn, and each router offers it to each of its
handlers, whose filters then say no: ≈ 10 µs per router and a few µs per handler, for the dozen
routers and ~60 handlers the bot has. Most of those refusals are known without running a
filter, from three facts of the event:

    the FSM state            ── a handler with StateFilter(…) takes only those states
    a button's data prefix   ── a handler with SomeData.filter() takes only that prefix
    a message is a command   ── a handler with Command(…) takes only text starting with "/"

`SkippingRouter(*routers)` holds the routers in their order and, for messages and button
presses, offers the event only to those with at least one handler whose filters admit these
three facts. It only skips what could not match: the routers it keeps run all their filters
in the same order, so the first handler to match is the one plain aiogram would pick. A handler
with no such filter (a catch-all) admits everything; so does a router with outer middlewares
(skipping it would skip them). Other update types go the plain aiogram way. aiogram's
`Command` is recognised by itself; a filter of ours that takes only commands says so with a
class attribute `command_prefix = "/"`.

The index is built at the first event of each type: include every handler before feeding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message, TelegramObject

_INDEXED = ("message", "callback_query")


class _Unknown:
    """A state or prefix that no handler names: only handlers that do not care admit it."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


@dataclass(frozen=True, slots=True)
class _Guard:
    """What one handler may take: None means "anything" for that fact."""

    states: frozenset[str | None] | None = None
    prefixes: frozenset[tuple[str, str]] | None = None  # (separator, prefix)
    command_prefixes: str | None = None

    def admits(self, state: Any, prefixes: frozenset[tuple[str, str]], command: bool) -> bool:
        if self.states is not None and state not in self.states:
            return False
        if self.prefixes is not None and not (self.prefixes & prefixes):
            return False
        return self.command_prefixes is None or command


def _state_names(state_filter: StateFilter) -> frozenset[str | None] | None:
    """The raw states a StateFilter admits, or None when it admits any (or a whole group)."""
    names: set[str | None] = set()
    for state in state_filter.states:
        if isinstance(state, State):
            state = state.state
        if state == "*" or not (isinstance(state, str) or state is None):
            return None  # "*", a StatesGroup: not worth indexing
        names.add(state)
    return frozenset(names)


def _guard(handler: HandlerObject) -> _Guard:
    states: frozenset[str | None] | None = None
    prefixes: frozenset[tuple[str, str]] | None = None
    command_prefixes: str | None = None
    for filter_object in handler.filters or ():
        callback = filter_object.callback
        if isinstance(callback, StateFilter):
            named = _state_names(callback)
            if named is not None:
                # Every filter must pass: several StateFilters admit their intersection.
                states = named if states is None else states & named
        elif isinstance(callback, CallbackQueryFilter):
            data = callback.callback_data
            own = frozenset({(data.__separator__, data.__prefix__)})
            prefixes = own if prefixes is None else prefixes & own
        elif isinstance(callback, Command):
            command_prefixes = "".join(callback.prefix)
        elif isinstance(getattr(callback, "command_prefix", None), str):
            command_prefixes = callback.command_prefix
    return _Guard(states, prefixes, command_prefixes)


@dataclass(slots=True)
class _Entry:
    router: Router
    guards: tuple[_Guard, ...] | None  # None: always offered


class _Index:
    """For one update type: which routers may take an event with given facts (memoised)."""

    def __init__(self, routers: Iterable[Router], update_type: str) -> None:
        self._entries = [_Entry(r, _guards(r, update_type)) for r in routers]
        guards = [g for e in self._entries if e.guards is not None for g in e.guards]
        self._states = {s for g in guards if g.states is not None for s in g.states}
        self._prefixes = {p for g in guards if g.prefixes is not None for p in g.prefixes}
        self._separators = tuple(sorted({sep for sep, _ in self._prefixes}))
        self._command_prefixes = tuple(
            sorted({c for g in guards if g.command_prefixes for c in g.command_prefixes})
        )
        # Keys: (known state or UNKNOWN, known prefixes, command?): bounded by the handlers.
        self._routes: dict[tuple[Any, frozenset[tuple[str, str]], bool], tuple[Router, ...]] = {}

    def routers_for(self, event: TelegramObject, raw_state: str | None) -> tuple[Router, ...]:
        state: Any = raw_state if raw_state in self._states else UNKNOWN
        prefixes: frozenset[tuple[str, str]] = frozenset()
        command = False
        if isinstance(event, CallbackQuery) and event.data:
            prefixes = frozenset(
                key
                for sep in self._separators
                if (key := (sep, event.data.split(sep, 1)[0])) in self._prefixes
            )
        elif isinstance(event, Message) and self._command_prefixes:
            # aiogram's Command reads the first word of the text or caption.
            text = event.text or event.caption
            command = bool(text) and text.lstrip()[:1] in self._command_prefixes
        key = (state, prefixes, command)
        routes = self._routes.get(key)
        if routes is None:
            routes = self._routes[key] = tuple(
                e.router
                for e in self._entries
                if e.guards is None or any(g.admits(state, prefixes, command) for g in e.guards)
            )
        return routes


def _guards(router: Router, update_type: str) -> tuple[_Guard, ...] | None:
    """The guards of every handler of `router` (and its sub-routers) for one update type;
    None when the router must always be offered the event."""
    observer = router.observers[update_type]
    if len(observer.outer_middleware):
        return None
    guards = [_guard(handler) for handler in observer.handlers]
    for sub in router.sub_routers:
        inner = _guards(sub, update_type)
        if inner is None:
            return None
        guards.extend(inner)
    if any(g == _Guard() for g in guards):
        return None  # a catch-all: everything may reach it
    return tuple(guards)


class SkippingRouter(Router):
    """The given routers, in order, each offered only the events it may take (see above)."""

    def __init__(self, *routers: Router, name: str = "steps") -> None:
        """Include `routers` in this order; they must be complete before the first event."""
        super().__init__(name=name)
        self.include_routers(*routers)
        self._indexes: dict[str, _Index] = {}

    async def propagate_event(self, update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        """Offer the event to the routers that may take it; other update types as usual."""
        if update_type not in _INDEXED:
            return await super().propagate_event(update_type, event, **kwargs)
        kwargs["event_router"] = self
        for router in self.offered(update_type, event, kwargs.get("raw_state")):
            response = await router.propagate_event(update_type=update_type, event=event, **kwargs)
            if response is not UNHANDLED:
                return response
        return UNHANDLED

    def offered(
        self, update_type: str, event: TelegramObject, raw_state: str | None
    ) -> tuple[Router, ...]:
        """The routers a message or button press in `raw_state` is offered to, in order."""
        index = self._indexes.get(update_type)
        if index is None:
            self._check_own_observer(update_type)
            index = self._indexes[update_type] = _Index(self.sub_routers, update_type)
        return index.routers_for(event, raw_state)

    def _check_own_observer(self, update_type: str) -> None:
        # This router only dispatches: handlers, filters or outer middlewares of its own would
        # be skipped by propagate_event above.
        observer = self.observers[update_type]
        root_filters = getattr(observer, "_handler", None)
        if observer.handlers or len(observer.outer_middleware) or root_filters.filters:
            raise RuntimeError(f"{self.name}: no handlers or filters of its own for {update_type}")
