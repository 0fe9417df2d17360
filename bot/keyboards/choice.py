"""Step 3 keyboards: queue type, state order, benefit, documents, providers, groups, preview.

Callback data carries only codes and short ids from the voucher service, never names: Telegram
allows 64 bytes, and a name is looked up again from what the step stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.keyboards.common import (
    back_button,
    back_keyboard,
    inline,
    shared,
    shared_button,
    with_back,
)
from services.voucher.models import Group, Provider, QueueType, StateOrderType

log = logging.getLogger("kezek.bot")

BUTTON_TEXT_MAX = 48  # longer labels are cut by Telegram clients anyway, mid-word


class QueuePick(CallbackData, prefix="ch-q"):
    code: str


class OrderPick(CallbackData, prefix="ch-o"):
    code: str


class BenefitAnswer(CallbackData, prefix="ch-b"):
    has: bool


class DocKeep(CallbackData, prefix="ch-d"):
    """Go on with the document already received for `kind` (after *Back*)."""

    kind: str


class ProviderPick(CallbackData, prefix="ch-p"):
    id: str


class ProviderNav(CallbackData, prefix="ch-pn"):
    """`page` shows page `page` of the current search; `all` drops the search."""

    action: str
    page: int


class GroupPick(CallbackData, prefix="ch-g"):
    id: str


class ChoiceAction(CallbackData, prefix="ch-a"):
    action: str  # "other_provider" | "continue"


def shorten(text: str, limit: int = BUTTON_TEXT_MAX) -> str:
    """Cut a label to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _button(text: str, data: CallbackData) -> InlineKeyboardButton | None:
    """A button, or None when the id is too long for callback data (logged, never sent)."""
    try:
        packed = data.pack()
    except ValueError:
        log.warning("id too long for callback data: %s", type(data).__name__)
        return None
    return InlineKeyboardButton(text=text, callback_data=packed)


def queue_type_keyboard(
    tr: Translator, types: Sequence[QueueType], current: str | None
) -> InlineKeyboardMarkup:
    """A button per queue type, the current one ticked (shared while the catalogue is the same)."""
    labels = tuple((q.code, q.title.get(tr.locale)) for q in types)
    return _catalogue_keyboard(tr, "queue-types", labels, current, QueuePick, shorten_labels=False)


def state_order_keyboard(
    tr: Translator, types: Sequence[StateOrderType], current: str | None
) -> InlineKeyboardMarkup:
    """A button per state order type, the current one ticked (shared like the queue types)."""
    labels = tuple((t.code, t.title.get(tr.locale)) for t in types)
    return _catalogue_keyboard(tr, "order-types", labels, current, OrderPick, shorten_labels=True)


def _catalogue_keyboard(
    tr: Translator,
    name: str,
    labels: tuple[tuple[str, str], ...],
    current: str | None,
    data: type[QueuePick] | type[OrderPick],
    *,
    shorten_labels: bool,
) -> InlineKeyboardMarkup:
    # The catalogue is the same for every parent and rarely changes: keyed by its codes and
    # titles, so a changed catalogue simply makes a new keyboard.
    chosen = current if any(code == current for code, _ in labels) else None

    def build() -> InlineKeyboardMarkup:
        rows = []
        for code, title in labels:
            label = _mark(code == chosen) + (shorten(title) if shorten_labels else title)
            if b := _button(label, data(code=code)):
                rows.append([b])
        return with_back(tr, *rows)

    return shared(tr, (name, labels, chosen), build)


def benefit_keyboard(tr: Translator, current: bool | None) -> InlineKeyboardMarkup:
    chosen = current if isinstance(current, bool) else None
    return shared(tr, ("benefit", chosen), lambda: _benefit_keyboard(tr, chosen))


def _benefit_keyboard(tr: Translator, current: bool | None) -> InlineKeyboardMarkup:
    yes = InlineKeyboardButton(
        text=_mark(current is True) + tr("btn-benefit-yes"),
        callback_data=BenefitAnswer(has=True).pack(),
    )
    no = InlineKeyboardButton(
        text=_mark(current is False) + tr("btn-benefit-no"),
        callback_data=BenefitAnswer(has=False).pack(),
    )
    return with_back(tr, [yes], [no])


def document_keyboard(tr: Translator, kind: str, has_document: bool) -> InlineKeyboardMarkup:
    if not has_document:
        return back_keyboard(tr)
    return shared(tr, ("document-keep", kind), lambda: _document_keyboard(tr, kind))


def _document_keyboard(tr: Translator, kind: str) -> InlineKeyboardMarkup:
    keep = InlineKeyboardButton(text=tr("btn-doc-keep"), callback_data=DocKeep(kind=kind).pack())
    return with_back(tr, [keep])


def provider_keyboard(
    tr: Translator, providers: Sequence[Provider], page: int, pages: int, searching: bool
) -> InlineKeyboardMarkup:
    rows = [
        [b]
        for p in providers
        if (b := _button(shorten(p.name.get(tr.locale)), ProviderPick(id=p.id)))
    ]
    paging = []
    if page > 1:
        paging.append(
            InlineKeyboardButton(
                text="◀", callback_data=ProviderNav(action="page", page=page - 1).pack()
            )
        )
    if page < pages:
        paging.append(
            InlineKeyboardButton(
                text="▶", callback_data=ProviderNav(action="page", page=page + 1).pack()
            )
        )
    show_all = [_show_all(tr)] if searching else []
    return with_back(tr, *rows, paging, show_all)


def nothing_found_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return shared(tr, "nothing-found", lambda: with_back(tr, [_show_all(tr)]))


def group_keyboard(tr: Translator, groups: Sequence[Group]) -> InlineKeyboardMarkup:
    rows = []
    for g in groups:
        full = "⚠️ " if g.seats_free <= 0 else ""
        label = f"{full}{shorten(g.name.get(tr.locale), 32)} ({g.age_min}–{g.age_max})"
        if b := _button(label, GroupPick(id=g.id)):
            rows.append([b])
    return with_back(tr, *rows, [_other_provider(tr)])


def no_group_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return shared(tr, "no-group", lambda: with_back(tr, [_other_provider(tr)]))


def preview_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return shared(tr, "preview", lambda: _preview_keyboard(tr))


def _preview_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    go = InlineKeyboardButton(
        text=tr("btn-preview-continue"), callback_data=ChoiceAction(action="continue").pack()
    )
    return inline([go], [back_button(tr)])


def _show_all(tr: Translator) -> InlineKeyboardButton:
    return shared_button(
        tr,
        "provider-all",
        lambda: InlineKeyboardButton(
            text=tr("btn-provider-all"), callback_data=ProviderNav(action="all", page=1).pack()
        ),
    )


def _other_provider(tr: Translator) -> InlineKeyboardButton:
    return shared_button(
        tr,
        "provider-other",
        lambda: InlineKeyboardButton(
            text=tr("btn-provider-other"),
            callback_data=ChoiceAction(action="other_provider").pack(),
        ),
    )


def _mark(chosen: bool) -> str:
    return "✅ " if chosen else ""
