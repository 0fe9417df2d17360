"""Step 3/5, benefits and choice: queue, state order, documents, provider, group, preview.

queue_type ──▶ state_order ──(special)──▶ disability_doc ──(file accepted)──▶ benefit
                    └────────(general)──────────────────────────────────────▶ benefit
benefit ──(yes)──▶ benefit_doc ──(file accepted)──┬──▶ provider
   └─────(no)─────────────────────────────────────┘    (preview instead when editing)
provider ──(◀ ▶ pages, typed search)──▶ provider ──(pick)──▶ group ──(fitting group)──▶ preview
preview ──(Continue)──▶ notify_channel (review when editing)
   age_out_of_range → group · document_required → disability_doc
"""

from __future__ import annotations

import logging
import math
from datetime import date
from typing import Any

from aiogram import Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import StateFilter
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiohttp import ClientError

from bot.failures import explain_failure
from bot.filters import HasFile, HasText
from bot.fsm.states import ApplicationForm
from bot.keyboards.choice import (
    BenefitAnswer,
    ChoiceAction,
    DocKeep,
    GroupPick,
    OrderPick,
    ProviderNav,
    ProviderPick,
    QueuePick,
    benefit_keyboard,
    document_keyboard,
    group_keyboard,
    no_group_keyboard,
    nothing_found_keyboard,
    preview_keyboard,
    provider_keyboard,
    queue_type_keyboard,
    state_order_keyboard,
)
from bot.keyboards.common import retry_keyboard
from bot.view import Prompt, StepView, esc
from services.academic_year import academic_year_start, age_on_september_first
from services.clock import ALMATY
from services.documents import (
    DocumentProblem,
    check_document,
    extension_for,
    size_problem,
)
from services.hostile_text import for_display
from services.voucher.errors import (
    AgeOutOfRange,
    DocumentRequired,
    FileTooLarge,
    NotFound,
    SessionInvalid,
    UnsupportedType,
    VoucherError,
)
from services.voucher.models import Group, PreviewRequest, Provider

S = ApplicationForm
log = logging.getLogger("kezek.bot")

QUEUE_TYPES = ("general", "special")
PER_PAGE = 10
SEEN_MAX = 100  # providers remembered for buttons on older pages of the same search
QUERY_MAX = 100
FILE_NAME_MAX = 128
KIND_OF = {S.disability_doc.state: "disability", S.benefit_doc.state: "benefit"}
_REFUSAL = {
    DocumentProblem.EMPTY: "choice-doc-empty",
    DocumentProblem.TOO_LARGE: "choice-doc-too-large",
    DocumentProblem.UNSUPPORTED: "choice-doc-wrong-type",
}
# FSM keys this step uses; dropped when the step is done.
_STEP_DATA = ("order_codes", "album", "provider_q", "provider_page", "provider_seen", "groups")


def create_router() -> Router:
    router = Router(name="choice")
    on_message, on_button = router.message.register, router.callback_query.register
    on_button(on_queue_type, QueuePick.filter(), StateFilter(S.queue_type))
    on_button(on_state_order, OrderPick.filter(), StateFilter(S.state_order))
    on_message(on_document, StateFilter(S.disability_doc, S.benefit_doc), HasFile())
    on_message(on_document_other, StateFilter(S.disability_doc, S.benefit_doc))
    on_button(on_document_keep, DocKeep.filter(), StateFilter(S.disability_doc, S.benefit_doc))
    on_button(on_benefit, BenefitAnswer.filter(), StateFilter(S.benefit))
    on_message(on_search, StateFilter(S.provider), HasText())
    on_message(on_provider_other, StateFilter(S.provider))
    on_button(on_provider_nav, ProviderNav.filter(), StateFilter(S.provider))
    on_button(on_provider, ProviderPick.filter(), StateFilter(S.provider))
    on_button(on_group, GroupPick.filter(), StateFilter(S.group))
    on_button(on_action, ChoiceAction.filter(), StateFilter(S.group, S.preview))
    on_message(
        on_use_buttons, StateFilter(S.queue_type, S.state_order, S.benefit, S.group, S.preview)
    )
    return router


# --- queue type --------------------------------------------------------------------------


async def ask_queue_type(view: StepView) -> None:
    """Offer the general and the special queue, each with the service's one-line explanation."""
    try:
        async with view.typing():
            types = await view.voucher.list_queue_types()
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    lines = [view.tr("choice-queue-ask")]
    lines += [
        f"<b>{esc(q.title.get(view.locale))}</b> — {esc(q.description.get(view.locale))}"
        for q in types
    ]
    current = (await view.draft()).get("queue_type")
    await view.send("\n\n".join(lines), queue_type_keyboard(view.tr, types, current))


async def on_queue_type(query: CallbackQuery, callback_data: QueuePick, view: StepView) -> None:
    """Keep the queue type; leaving the special queue drops its disability document."""
    code = callback_data.code
    if code not in QUEUE_TYPES:
        await _outdated(view)
        return
    draft = await view.draft()
    changes: dict[str, Any] = {"queue_type": code}
    if code != draft.get("queue_type"):
        changes["preview"] = None
    documents = dict(draft.get("documents") or {})
    if code == "general" and documents.pop("disability", None) is not None:
        changes["documents"] = documents or None
    await view.goto(S.state_order, **changes)


# --- state order type --------------------------------------------------------------------


async def ask_state_order(view: StepView) -> None:
    """Offer the state order types the service lists."""
    try:
        async with view.typing():
            types = await view.voucher.list_state_order_types()
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    await view.state.update_data(order_codes=[t.code for t in types])
    # Titles are long; the buttons may cut them, the text shows them whole.
    lines = [view.tr("choice-order-ask")] + [f"• {esc(t.title.get(view.locale))}" for t in types]
    current = (await view.draft()).get("state_order_type")
    await view.send("\n".join(lines), state_order_keyboard(view.tr, types, current))


async def on_state_order(query: CallbackQuery, callback_data: OrderPick, view: StepView) -> None:
    """Keep the state order type; the special queue then asks for the disability document."""
    data = await view.state.get_data()
    if callback_data.code not in (data.get("order_codes") or []):
        await _outdated(view)
        return
    draft = await view.draft()
    changes: dict[str, Any] = {"state_order_type": callback_data.code}
    if callback_data.code != draft.get("state_order_type"):
        changes["preview"] = None
    queue_type = draft.get("queue_type")
    if queue_type not in QUEUE_TYPES:
        await view.goto(S.queue_type, **changes)
    elif queue_type == "special":
        await view.goto(S.disability_doc, **changes)
    else:
        await view.goto(S.benefit, **changes)


# --- documents ---------------------------------------------------------------------------


async def ask_disability_doc(view: StepView) -> None:
    """Ask for the disability document (special queue)."""
    await _ask_document(view, "disability", view.tr("choice-disability-ask"))


async def ask_benefit_doc(view: StepView) -> None:
    """Ask for the document that proves the benefit."""
    await _ask_document(view, "benefit", view.tr("choice-benefit-doc-ask"))


async def _ask_document(view: StepView, kind: str, question: str) -> None:
    current = ((await view.draft()).get("documents") or {}).get(kind)
    parts = [question, view.tr("choice-doc-rules")]
    if current:
        parts.append(
            view.tr(
                "choice-doc-current",
                name=esc(current.get("file_name", "")),
                size=_size(view, int(current.get("size", 0))),
            )
        )
    await view.send("\n\n".join(parts), document_keyboard(view.tr, kind, bool(current)))


async def on_document(message: Message, view: StepView) -> None:
    """A file or a photo: check size, download into memory, check bytes, upload, go on."""
    kind = KIND_OF.get(await view.current() or "")
    if kind is None:
        return
    if message.media_group_id:
        await _refuse_album(view, message.media_group_id)
        return
    fetched = await _fetch(view, message)
    if fetched is None:
        return
    content, name = fetched
    draft = await view.draft()
    session = draft.get("session")
    if not session:
        await explain_failure(view, SessionInvalid(401, "no session in the draft"))
        return
    try:
        async with view.typing():
            uploaded = await view.voucher.upload_document(session, kind, content, name)
    except FileTooLarge:
        await _refuse(view, DocumentProblem.TOO_LARGE)
        return
    except UnsupportedType:
        await _refuse(view, DocumentProblem.UNSUPPORTED)
        return
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    documents = dict(draft.get("documents") or {})
    documents[kind] = {
        "document_id": uploaded.document_id,
        "file_name": name,
        "size": uploaded.size,
        "content_type": uploaded.content_type,
    }
    # The document, the next step and the receipt in that order: one commit, then the parent
    # hears it was received.
    await view.move(await _next_after_document(view, kind), documents=documents, preview=None)
    await view.send(
        view.tr("choice-doc-received", name=esc(name), size=_size(view, uploaded.size)),
        header=False,
    )
    await view.ask()


async def on_document_other(message: Message, view: StepView) -> None:
    """Text, a sticker or anything but a file: say what is expected, ask again."""
    await view.send(view.tr("choice-doc-expected"), header=False)
    await view.ask()


async def on_document_keep(query: CallbackQuery, callback_data: DocKeep, view: StepView) -> None:
    """*Continue* with the document received before (the parent came back with *Back*)."""
    kind = KIND_OF.get(await view.current() or "")
    documents = (await view.draft()).get("documents") or {}
    if kind is None or callback_data.kind != kind or kind not in documents:
        await _outdated(view)
        return
    await _after_document(view, kind)


async def _after_document(view: StepView, kind: str) -> None:
    await view.goto(await _next_after_document(view, kind))


async def _next_after_document(view: StepView, kind: str) -> State:
    return S.benefit if kind == "disability" else await _next_after_benefit(view)


async def _refuse_album(view: StepView, media_group_id: str) -> None:
    # Telegram delivers an album as one message per file: answer the first one only.
    data = await view.state.get_data()
    if data.get("album") == media_group_id:
        return
    await view.state.update_data(album=media_group_id)
    await view.send(view.tr("choice-doc-one-at-a-time"), header=False)
    await view.ask()


async def _refuse(view: StepView, problem: DocumentProblem | None) -> None:
    """Say why the file was not taken (None: it could not be fetched), then ask again."""
    message = view.tr(_REFUSAL[problem]) if problem else view.tr("choice-doc-download-failed")
    await view.send(message, header=False)
    await view.ask()


async def _fetch(view: StepView, message: Message) -> tuple[bytes, str] | None:
    """The file's bytes and a name to show, or None after telling the parent why not."""
    file_id, declared_name, declared_size = _file_of(message)
    # Refused by the size Telegram reports: a too-large file is never downloaded.
    problem = size_problem(declared_size)
    if problem is not None:
        await _refuse(view, problem)
        return None
    try:
        # Into memory only: a parent's document never touches the bot's disk.
        buffer = await view.bot.download(file_id)
    except TelegramBadRequest as exc:
        # Telegram lets bots fetch files up to 20 MB; anything else is a file we cannot get.
        too_big = "too big" in str(exc).lower()
        await _refuse(view, DocumentProblem.TOO_LARGE if too_big else None)
        return None
    except (TelegramAPIError, ClientError, TimeoutError, OSError) as exc:
        log.warning("document download failed: %s", type(exc).__name__)
        await _refuse(view, None)
        return None
    content = buffer.read() if buffer is not None else b""
    check = check_document(content)
    if check.problem is not None:
        await _refuse(view, check.problem)
        return None
    name = declared_name or "document" + extension_for(check.content_type or "")
    return content, _clean_name(name)


def _file_of(message: Message) -> tuple[str, str | None, int | None]:
    """file_id, declared name and declared size of a document or of the largest photo size."""
    if message.document is not None:
        doc = message.document
        return doc.file_id, doc.file_name, doc.file_size
    largest = max(message.photo or [], key=lambda p: (p.file_size or 0, p.width * p.height))
    return largest.file_id, "photo.jpg", largest.file_size


def _clean_name(name: str) -> str:
    """A file name fit to show and to send on: no path, no control characters, not too long."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "document"
    return name[-FILE_NAME_MAX:]


# --- benefit -----------------------------------------------------------------------------


async def ask_benefit(view: StepView) -> None:
    """Ask whether the child has a benefit."""
    current = (await view.draft()).get("has_benefit")
    await view.send(view.tr("choice-benefit-ask"), benefit_keyboard(view.tr, current))


async def on_benefit(query: CallbackQuery, callback_data: BenefitAnswer, view: StepView) -> None:
    """Yes asks for the benefit document; No drops one sent before and goes on."""
    if callback_data.has:
        await view.goto(S.benefit_doc, has_benefit=True)
        return
    documents = dict((await view.draft()).get("documents") or {})
    dropped = documents.pop("benefit", None) is not None
    changes: dict[str, Any] = {"has_benefit": False}
    if dropped:
        changes.update(documents=documents or None, preview=None)
    await view.goto(await _next_after_benefit(view), **changes)


async def _next_after_benefit(view: StepView) -> State:
    draft = await view.draft()
    if draft.get("editing") and draft.get("provider") and draft.get("group"):
        return S.preview  # recomputed: the queue or documents may have changed
    return S.provider


# --- provider ----------------------------------------------------------------------------


async def ask_provider(view: StepView) -> None:
    """Show the current page of providers (of the current search, if any)."""
    data = await view.state.get_data()
    await _show_providers(view, data.get("provider_q"), int(data.get("provider_page") or 1))


async def on_search(message: Message, view: StepView) -> None:
    """Typed text searches provider names in both languages."""
    # Invisible and control characters dropped: an RTL override would turn our own line around.
    query = for_display(message.text or "", QUERY_MAX)
    if not query:
        await view.ask()
        return
    await _show_providers(view, query, 1)


async def on_provider_other(message: Message, view: StepView) -> None:
    """Not text: say what is expected, ask again."""
    await view.send(view.tr("choice-provider-expected"), header=False)
    await view.ask()


async def on_provider_nav(query: CallbackQuery, callback_data: ProviderNav, view: StepView) -> None:
    """◀ ▶ turn pages and *Show all* drops the search, editing the list in place."""
    if callback_data.action == "all":
        await _show_providers(view, None, 1, query.message)
    elif callback_data.action == "page":
        data = await view.state.get_data()
        page = max(1, callback_data.page)
        await _show_providers(view, data.get("provider_q"), page, query.message)
    else:
        await _outdated(view)


async def on_provider(query: CallbackQuery, callback_data: ProviderPick, view: StepView) -> None:
    """Keep the provider; another provider than before drops the group."""
    seen = (await view.state.get_data()).get("provider_seen") or {}
    chosen = seen.get(callback_data.id)
    if chosen is None:
        await _outdated(view)
        return
    provider = Provider.model_validate(chosen)
    draft = await view.draft()
    changes: dict[str, Any] = {"provider": provider.model_dump(mode="json")}
    if (draft.get("provider") or {}).get("id") != provider.id:
        changes.update(group=None, preview=None)
    await view.goto(S.group, **changes)


async def _show_providers(view: StepView, q: str | None, page: int, message: Any = None) -> None:
    """One page of providers: sent anew, or edited into `message` when paging."""
    try:
        async with view.typing():
            found = await view.voucher.list_providers(q, page, PER_PAGE)
            pages = max(1, math.ceil(found.total / PER_PAGE))
            if not found.items and found.total and page > pages:  # the list got shorter
                page = pages
                found = await view.voucher.list_providers(q, page, PER_PAGE)
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    data = await view.state.get_data()
    seen: dict[str, Any] = dict(data.get("provider_seen") or {})
    for provider in found.items:
        seen.pop(provider.id, None)
        seen[provider.id] = provider.model_dump(mode="json")
    while len(seen) > SEEN_MAX:
        seen.pop(next(iter(seen)))
    await view.state.update_data(provider_q=q, provider_page=page, provider_seen=seen)
    if found.total == 0 and q:
        text, markup = (
            view.tr("choice-provider-none", query=esc(q)),
            nothing_found_keyboard(view.tr),
        )
    elif found.total == 0:
        text, markup = view.tr("choice-provider-empty"), retry_keyboard(view.tr)
    else:
        lines = [view.tr("choice-provider-ask")]
        if q:
            lines.append(view.tr("choice-provider-search", query=esc(q), total=found.total))
        lines.append("")
        lines += [
            f"• <b>{esc(p.name.get(view.locale))}</b> — {esc(p.address)}" for p in found.items
        ]
        lines += ["", view.tr("choice-provider-page", page=str(page), pages=str(pages))]
        text = "\n".join(lines)
        markup = provider_keyboard(view.tr, found.items, page, pages, searching=bool(q))
    if message is None:
        await view.send(text, markup)
    else:
        await view.edit(message, text, markup)


# --- group -------------------------------------------------------------------------------


async def ask_group(view: StepView) -> None:
    """The provider's groups that take a child of this age on 1 September."""
    draft = await view.draft()
    provider, child = draft.get("provider"), draft.get("child") or {}
    if not provider:
        await view.goto(S.provider)
        return
    if not child.get("birth_date"):
        await view.goto(S.child_iin)
        return
    try:
        async with view.typing():
            groups = await view.voucher.list_groups(provider["id"])
    except NotFound:
        await view.move(S.provider, provider=None, group=None, preview=None)
        await view.send(view.tr("choice-provider-gone"), header=False)
        await view.ask()
        return
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    today = view.services.clock.now().astimezone(ALMATY).date()
    age = age_on_september_first(date.fromisoformat(child["birth_date"]), today)
    fitting = [g for g in groups if g.age_min <= age <= g.age_max]
    await view.state.update_data(groups={g.id: g.model_dump(mode="json") for g in fitting})
    args = {
        "provider": esc(_local(view, provider.get("name"))),
        "age": age,
        "year": str(academic_year_start(today)),
    }
    if not fitting:
        await view.send(view.tr("choice-group-none", **args), no_group_keyboard(view.tr))
        return
    lines = [view.tr("choice-group-ask", **args), ""]
    lines += [_group_line(view, g) for g in fitting]
    hidden = len(groups) - len(fitting)
    if hidden:
        lines += ["", view.tr("choice-group-hidden", count=hidden)]
    await view.send("\n".join(lines), group_keyboard(view.tr, fitting))


async def on_group(query: CallbackQuery, callback_data: GroupPick, view: StepView) -> None:
    """Keep the group (one without free seats too: the parent may still queue)."""
    offered = (await view.state.get_data()).get("groups") or {}
    chosen = offered.get(callback_data.id)
    if chosen is None:
        await _outdated(view)
        return
    group = Group.model_validate(chosen)
    await view.goto(S.preview, group=group.model_dump(mode="json"), preview=None)


def _group_line(view: StepView, group: Group) -> str:
    args = {
        "name": esc(group.name.get(view.locale)),
        "age_min": group.age_min,
        "age_max": group.age_max,
        "language": view.tr(f"choice-group-lang-{group.language}"),
    }
    if group.seats_free <= 0:
        return view.tr("choice-group-line-full", **args)
    return view.tr("choice-group-line", seats=str(group.seats_free), **args)


# --- preview -----------------------------------------------------------------------------


async def ask_preview(view: StepView) -> None:
    """Ask the service which queue the application goes to, and show it."""
    draft = await view.draft()
    missing = _first_missing(draft)
    if missing is not None:
        await view.goto(missing)
        return
    session = draft.get("session")
    if not session:
        await explain_failure(view, SessionInvalid(401, "no session in the draft"))
        return
    request = PreviewRequest(
        child_iin=draft["child"]["iin"],
        queue_type=draft["queue_type"],
        state_order_type=draft["state_order_type"],
        group_id=draft["group"]["id"],
        documents=_document_ids(draft),
    )
    try:
        async with view.typing():
            preview = await view.voucher.preview_queue(session, request)
    except AgeOutOfRange:
        await view.move(S.group, group=None, preview=None)
        await view.send(view.tr("choice-preview-age-out"), header=False)
        await view.ask()
        return
    except DocumentRequired:
        await view.move(S.disability_doc, preview=None)
        await view.send(view.tr("choice-preview-document-required"), header=False)
        await view.ask()
        return
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    await view.save(preview=preview.model_dump(mode="json"))
    start, _, end = preview.academic_year.partition("-")
    text = view.tr(
        "choice-preview",
        queue=esc(preview.queue.title.get(view.locale)),
        provider=esc(_local(view, draft["provider"].get("name"))),
        group=esc(_local(view, draft["group"].get("name"))),
        age=preview.age_on_sept_1,
        year=esc(start),
        academic_year=esc(f"{start}–{end}" if end else start),
    )
    await view.send(text, preview_keyboard(view.tr))


async def on_action(query: CallbackQuery, callback_data: ChoiceAction, view: StepView) -> None:
    """*Choose another provider* at the group list; *Continue* at the preview."""
    current = await view.current()
    if callback_data.action == "other_provider" and current == S.group.state:
        await view.goto(S.provider)
    elif callback_data.action == "continue" and current == S.preview.state:
        draft = await view.draft()
        if not draft.get("preview"):
            await view.ask()
            return
        await _drop_step_data(view)
        await view.goto(S.review if draft.get("editing") else S.notify_channel)
    else:
        await _outdated(view)


def _first_missing(draft: dict[str, Any]) -> State | None:
    """The earliest state of this step whose answer the draft lacks."""
    if draft.get("queue_type") not in QUEUE_TYPES:
        return S.queue_type
    if not draft.get("state_order_type"):
        return S.state_order
    if draft.get("has_benefit") is None:
        return S.benefit
    if not draft.get("provider"):
        return S.provider
    if not draft.get("group"):
        return S.group
    if not (draft.get("child") or {}).get("iin"):
        return S.child_iin
    return None


def _document_ids(draft: dict[str, Any]) -> list[str]:
    """The documents that count for the answers given: disability for special, benefit if any."""
    documents = draft.get("documents") or {}
    wanted = []
    if draft.get("queue_type") == "special":
        wanted.append("disability")
    if draft.get("has_benefit"):
        wanted.append("benefit")
    return [documents[k]["document_id"] for k in wanted if k in documents]


# --- shared ------------------------------------------------------------------------------


async def on_use_buttons(message: Message, view: StepView) -> None:
    """Anything typed where a button is expected: say so, ask again."""
    await view.send(view.tr("choice-use-buttons"), header=False)
    await view.ask()


async def _outdated(view: StepView) -> None:
    await view.send(view.tr("button-outdated"), header=False)
    await view.ask()


async def _drop_step_data(view: StepView) -> None:
    data = await view.state.get_data()
    await view.state.set_data({k: v for k, v in data.items() if k not in _STEP_DATA})


def _local(view: StepView, names: Any) -> str:
    """A `{kk, ru}` name from the draft in the parent's language."""
    if not isinstance(names, dict):
        return str(names or "")
    return str(names.get(view.locale) or next(iter(names.values()), ""))


def _size(view: StepView, size: int) -> str:
    """`245 КБ` / `1,4 МБ`: sizes the way people read them."""
    if size < 1024 * 1024:
        return view.tr("choice-size-kb", value=str(max(1, round(size / 1024))))
    return view.tr("choice-size-mb", value=f"{size / (1024 * 1024):.1f}".replace(".", ","))


PROMPTS: dict[str, Prompt] = {
    S.queue_type.state: ask_queue_type,
    S.state_order.state: ask_state_order,
    S.disability_doc.state: ask_disability_doc,
    S.benefit.state: ask_benefit,
    S.benefit_doc.state: ask_benefit_doc,
    S.provider.state: ask_provider,
    S.group.state: ask_group,
    S.preview.state: ask_preview,
}
