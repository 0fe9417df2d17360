"""An in-process Telegram: a `BaseSession` that answers the Bot API like Telegram, no network.

The tests and the terminal demo drive the real Dispatcher with it. It keeps what Telegram
keeps (chats, messages with their current text and keyboard, files, answered callback
queries), validates requests where Telegram would refuse them, and records every request so a
test can assert on what the bot sent. Results go through aiogram's own response parsing, so
handlers get properly typed and bot-bound objects back.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from html import unescape
from typing import TYPE_CHECKING, Any, NamedTuple

from aiogram.client.session.base import BaseSession
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.types import InputFile, URLInputFile

from services.clock import Clock, SystemClock

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger("kezek.local_session")

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_BUTTONS = 100
MAX_DOWNLOAD = 20 * 1024 * 1024  # bots may download files up to 20 MB
VISIBLE_KINDS = frozenset({"message", "document", "photo", "edit"})
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Methods that change nothing a chat can see: Telegram answers True.
_TRUE_METHODS = frozenset(
    {
        "setMyCommands",
        "deleteMyCommands",
        "setChatMenuButton",
        "deleteWebhook",
        "setMyDescription",
        "setMyShortDescription",
        "setMyName",
    }
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)

Fault = BaseException | Callable[[TelegramMethod[Any]], BaseException]
Listener = Callable[["Sent"], None]


class Button(NamedTuple):
    """One keyboard button as the user sees it."""

    text: str
    callback_data: str | None = None
    url: str | None = None
    request_contact: bool = False


@dataclass(frozen=True, slots=True)
class Sent:
    """One thing the bot did that Telegram would show or acknowledge."""

    kind: str  # message, document, photo, edit, delete, action, callback_answer, or the API name
    chat_id: int | None
    message_id: int | None = None
    text: str | None = None  # as the bot sent it (HTML when parse_mode is HTML)
    parse_mode: str | None = None
    buttons: list[list[Button]] = field(default_factory=list)
    reply_keyboard: bool = False
    remove_keyboard: bool = False
    plain: str | None = None  # what the user reads: tags stripped, entities decoded
    file_name: str | None = None
    content: bytes | None = None
    show_alert: bool = False
    method: TelegramMethod[Any] | None = field(default=None, repr=False, compare=False)

    @property
    def visible(self) -> bool:
        """A message or an edit, as opposed to chat actions and callback answers."""
        return self.kind in VISIBLE_KINDS

    @property
    def button_texts(self) -> list[str]:
        """The buttons' labels, row after row."""
        return [b.text for row in self.buttons for b in row]


class UnsupportedMethodError(NotImplementedError):
    """The bot called a Bot API method this stand-in does not know; a test should notice."""


class _ApiError(Exception):
    """Telegram's refusal: the HTTP status and the description it would send."""

    def __init__(self, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.status = status


def retry_after(seconds: int) -> Callable[[TelegramMethod[Any]], BaseException]:
    """A `fail_next` fault: flood control, as Telegram answers with 429."""
    return lambda method: TelegramRetryAfter(
        method=method, message=f"Too Many Requests: retry after {seconds}", retry_after=seconds
    )


def forbidden(
    description: str = "Forbidden: bot was blocked by the user",
) -> Callable[[TelegramMethod[Any]], BaseException]:
    """A `fail_next` fault: the user blocked the bot (403)."""
    return lambda method: TelegramForbiddenError(method=method, message=description)


def bad_request(description: str) -> Callable[[TelegramMethod[Any]], BaseException]:
    """A `fail_next` fault: a 400 with Telegram's description, e.g. "message is not modified"."""
    return lambda method: TelegramBadRequest(method=method, message=description)


# --- HTML parse mode, the way Telegram reads it -------------------------------------------

_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)"
    r"((?:\s+[^\s=>/]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*)\s*>"
)
_ATTR = re.compile(r"([^\s=>/]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+)))?")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class HtmlError(ValueError):
    """Text that Telegram would refuse with "can't parse entities"."""


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(text: str, *, show_urls: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities (UTF-16 offsets) of an HTML message; HtmlError where Telegram fails.

    Like Telegram, a `<` must open a supported tag, while a lone `&` or `>` is taken literally.
    `show_urls` appends a link's address after its text, for the terminal.
    """
    out: list[str] = []
    length = 0  # UTF-16 units written so far
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []
    pos = 0
    while pos < len(text):
        lt = text.find("<", pos)
        chunk = text[pos:] if lt < 0 else text[pos:lt]
        if chunk:
            decoded = _ENTITY.sub(lambda m: unescape(m.group(0)), chunk)
            out.append(decoded)
            length += _u16(decoded)
        if lt < 0:
            break
        offset = len(text[:lt].encode())
        tag = _TAG.match(text, lt)
        if tag is None:
            raise HtmlError(f"Unsupported start tag at byte offset {offset}")
        closing, name, raw_attrs = tag.group(1), tag.group(2).lower(), tag.group(3)
        if not closing:
            if name not in _ENTITY_TYPES:
                raise HtmlError(f'Unsupported start tag "{name}" at byte offset {offset}')
            attrs = {
                m.group(1).lower(): unescape(m.group(2) or m.group(3) or m.group(4) or "")
                for m in _ATTR.finditer(raw_attrs)
            }
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
            stack.append((name, length, attrs))
        else:
            if not stack:
                raise HtmlError(f'Unexpected end tag "{name}" at byte offset {offset}')
            open_name, start, attrs = stack.pop()
            if open_name != name:
                raise HtmlError(
                    f'Unmatched end tag at byte offset {offset}, expected "</{open_name}>", '
                    f'found "</{name}>"'
                )
            entity = _entity(name, start, length - start, attrs, stack)
            if entity is not None:
                entities.append(entity)
            if show_urls and name == "a" and attrs.get("href"):
                url = attrs["href"]
                if url not in "".join(out)[-len(url) :]:
                    suffix = f" ({url})"
                    out.append(suffix)
                    length += _u16(suffix)
        pos = tag.end()
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _entity(
    name: str, start: int, size: int, attrs: dict[str, str], stack: list[Any]
) -> dict[str, Any] | None:
    kind = _ENTITY_TYPES[name]
    if name == "code" and stack and stack[-1][0] == "pre":
        # <pre><code class="language-x"> is one pre entity with a language
        language = attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1][2]["language"] = language.removeprefix("language-")
            return None
    if size <= 0:
        return None
    entity: dict[str, Any] = {"type": kind, "offset": start, "length": size}
    if name == "a":
        if not attrs.get("href"):
            return None
        entity["url"] = attrs["href"]
    elif name == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif name == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif name == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    return entity


def html_to_plain(text: str, *, show_urls: bool = True) -> str:
    """What the user reads of an HTML message; text that is not valid HTML comes back as is."""
    try:
        return parse_html(text, show_urls=show_urls)[0]
    except HtmlError:
        return text


def _strip(plain: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims leading and trailing whitespace and keeps entities in step."""
    stripped = plain.strip()
    if stripped == plain:
        return plain, entities
    lead = _u16(plain[: len(plain) - len(plain.lstrip())])
    end = _u16(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        stop = min(entity["offset"] + entity["length"] - lead, end)
        if stop > start:
            kept.append({**entity, "offset": start, "length": stop - start})
    return stripped, kept


# --- the session --------------------------------------------------------------------------


@dataclass(slots=True)
class _Stored:
    json: dict[str, Any]  # the Message as Telegram would return it now
    from_bot: bool
    kind: str
    raw_text: str | None = None
    parse_mode: str | None = None
    deleted: bool = False


@dataclass(slots=True)
class _File:
    file_id: str
    unique_id: str
    path: str
    size: int
    content: bytes | None


@dataclass(slots=True)
class _Markup:
    rows: list[list[Button]]
    inline: dict[str, Any] | None  # echoed in the Message, as Telegram does for inline only
    reply: bool = False
    remove: bool = False


class LocalBotSession(BaseSession):
    """Telegram, in process: answers Bot API methods with typed results and records them."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        bot_name: str = "Kezek",
        bot_username: str = "kezek_bot",
    ) -> None:
        super().__init__()
        self.clock = clock or SystemClock()
        self.bot_name = bot_name
        self.bot_username = bot_username
        self.requests: list[TelegramMethod[Any]] = []
        self._sent: list[Sent] = []
        self._by_chat: dict[int | None, list[Sent]] = {}
        self._listeners: list[Listener] = []
        self._faults: list[tuple[type[TelegramMethod[Any]], Fault]] = []
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: set[int] = set()
        self._messages: dict[tuple[int, int], _Stored] = {}
        self._last_id: dict[int, int] = {}
        self._reply_keyboard: dict[int, tuple[int, list[list[Button]]]] = {}
        self._files: dict[str, _File] = {}
        self._paths: dict[str, _File] = {}
        self._callbacks: dict[str, int] = {}
        self._answered: set[str] = set()
        self._update_id = 0
        self._counter = 0
        self.closed = False
        self._methods = self._method_table()
        self._response_types: dict[Any, type[Response[Any]]] = {}

    # --- what tests and LocalChat use -----------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[Sent]:
        """Everything the bot sent, in order; only to `chat_id` when given."""
        if chat_id is None:
            return list(self._sent)
        return list(self._by_chat.get(chat_id, ()))

    def on_send(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every new Sent record; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def fail_next(self, method_type: type[TelegramMethod[Any]], exc: Fault) -> None:
        """Make the next call of `method_type` raise `exc` (or `exc(method)`), once."""
        self._faults.append((method_type, exc))

    def block(self, chat_id: int) -> None:
        """The user blocks the bot: every later call into that chat gets a 403."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        """The user restarts the bot."""
        self._blocked.discard(chat_id)

    def register_chat(self, chat: dict[str, Any]) -> None:
        """Make a chat known (Telegram's Chat object as a dict)."""
        self._chats[chat["id"]] = chat

    def next_update_id(self) -> int:
        """A fresh update_id, shared by all chats as Telegram's is."""
        self._update_id += 1
        return self._update_id

    def continue_update_ids_after(self, last: int) -> None:
        """Go on from `last`, as Telegram's sequence outlives a restart of the bot."""
        self._update_id = max(self._update_id, last)

    def next_message_id(self, chat_id: int) -> int:
        """The next message id of a chat; the user's and the bot's messages share the sequence."""
        self._last_id[chat_id] = self._last_id.get(chat_id, 0) + 1
        return self._last_id[chat_id]

    def now(self) -> int:
        """Telegram's Unix timestamp for 'now'."""
        return int(self.clock.now().timestamp())

    def store_incoming(self, message: dict[str, Any]) -> None:
        """Remember a message the user sent, so edits and deletes of it behave as in Telegram."""
        key = (message["chat"]["id"], message["message_id"])
        self._messages[key] = _Stored(json=message, from_bot=False, kind="incoming")

    def register_file(
        self, content: bytes, *, size: int | None = None, ext: str = ""
    ) -> dict[str, Any]:
        """Store bytes the user uploaded; returns file_id, file_unique_id and file_size."""
        self._counter += 1
        n = self._counter
        folder = "photos" if ext in {".jpg", ".jpeg", ".png"} else "documents"
        stored = _File(
            file_id=f"LOCAL-FILE-{n:06d}",
            unique_id=f"U{n:06d}",
            path=f"{folder}/file_{n}{ext}",
            size=len(content) if size is None else size,
            content=content,
        )
        self._files[stored.file_id] = stored
        self._paths[stored.path] = stored
        return _file_ref(stored)

    def new_callback_id(self, chat_id: int) -> str:
        """A callback query id whose answer will be attributed to `chat_id`."""
        self._counter += 1
        query_id = f"{chat_id}:{self._counter}"
        self._callbacks[query_id] = chat_id
        return query_id

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A message as Telegram holds it now (after edits); None if unknown or deleted.

        A stored message is never changed in place (an edit stores a new dict), so a copy of
        its top level keeps the store safe from a caller that sets a key: a deep copy cost the
        benchmark ≈ 4 % of the loop per button press, charged to the bot.
        """
        stored = self._messages.get((chat_id, message_id))
        if stored is None or stored.deleted:
            return None
        return dict(stored.json)

    def current(self, chat_id: int, message_id: int) -> Sent | None:
        """A bot message's current text and keyboard as a Sent record."""
        stored = self._messages.get((chat_id, message_id))
        if stored is None or stored.deleted or not stored.from_bot:
            return None
        return self._view(stored, stored.kind)

    def last_inline(self, chat_id: int) -> Sent | None:
        """The newest bot message in the chat that still shows inline buttons."""
        for message_id in range(self._last_id.get(chat_id, 0), 0, -1):
            current = self.current(chat_id, message_id)
            if current is not None and current.buttons:
                return current
        return None

    def reply_keyboard(self, chat_id: int) -> tuple[int, list[list[Button]]] | None:
        """The reply keyboard the chat shows (and the id of the message that set it), if any."""
        return self._reply_keyboard.get(chat_id)

    # --- BaseSession ----------------------------------------------------------------------

    async def close(self) -> None:
        """Nothing to release; remembered so a test can see the bot closed its session."""
        self.closed = True

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> Any:
        """Answer one Bot API call as Telegram would."""
        self.requests.append(method)
        for i, (method_type, fault) in enumerate(self._faults):
            if isinstance(method, method_type):
                del self._faults[i]
                raise fault if isinstance(fault, BaseException) else fault(method)
        name = method.__api_method__
        handler = self._methods.get(name)
        if handler is None and name not in _TRUE_METHODS:
            raise UnsupportedMethodError(f"LocalBotSession does not implement {name}")
        files: dict[str, InputFile] = {}
        data: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None:
                data[key] = prepared
        try:
            chat_id = data.get("chat_id")
            if isinstance(chat_id, int) and chat_id in self._blocked:
                raise _ApiError("Forbidden: bot was blocked by the user", 403)
            if handler is None:
                result: Any = True
                sent: Sent | None = Sent(kind=name, chat_id=None, method=method)
            else:
                result, sent = await handler(bot, method, data, files)
        except _ApiError as err:
            payload: dict[str, Any] = {
                "ok": False,
                "error_code": err.status,
                "description": err.description,
            }
            self.check_response(bot, method, err.status, json.dumps(payload))
            raise AssertionError("check_response accepted an error") from err  # unreachable
        # Parsed like aiogram parses Telegram's JSON, so results are typed and bound to the bot.
        # The Response[T] class is cached: pydantic rebuilds dropped generic classes, which cost
        # more than everything else here together.
        returning = method.__returning__
        response_type = self._response_types.get(returning)
        if response_type is None:
            response_type = Response[returning]  # type: ignore[valid-type]
            self._response_types[returning] = response_type
        response = response_type.model_validate(
            {"ok": True, "result": result}, context={"bot": bot}
        )
        if sent is not None:
            self._record(sent)
        return response.result

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        """The bytes of a file the chat uploaded, as `bot.download` asks for them."""
        marker = url.find("/file/bot")
        path = url[marker + len("/file/bot") :].split("/", 1)[-1] if marker >= 0 else url
        stored = self._paths.get(path)
        if stored is None or stored.content is None:
            raise FileNotFoundError(f"LocalBotSession has no file at {path!r}")
        for start in range(0, len(stored.content), chunk_size):
            yield stored.content[start : start + chunk_size]

    # --- methods --------------------------------------------------------------------------

    def _method_table(self) -> dict[str, Callable[..., Any]]:
        return {
            "getMe": self._get_me,
            "getFile": self._get_file,
            "sendMessage": self._send_message,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_text,
            "editMessageCaption": self._edit_caption,
            "editMessageReplyMarkup": self._edit_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback,
            "sendChatAction": self._send_chat_action,
        }

    def _bot_user(self, bot: Bot) -> dict[str, Any]:
        return {
            "id": bot.id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    async def _get_me(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        me = {
            **self._bot_user(bot),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        return me, None

    async def _get_file(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        stored = self._files.get(data["file_id"])
        if stored is None:
            raise _ApiError("Bad Request: invalid file_id")
        if stored.size > MAX_DOWNLOAD:
            raise _ApiError("Bad Request: file is too big")
        result = {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }
        return result, None

    async def _send_message(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        chat = self._chat(data["chat_id"])
        raw = data.get("text", "")
        parse_mode = data.get("parse_mode")
        plain, entities = self._parse(raw, parse_mode, data.get("entities"))
        if not plain:
            raise _ApiError("Bad Request: message text is empty")
        if _u16(plain) > MAX_TEXT:
            raise _ApiError("Bad Request: message is too long")
        markup = self._markup(data.get("reply_markup"))
        message = self._new_message(bot, chat)
        message["text"] = plain
        if entities:
            message["entities"] = entities
        return self._store_sent(message, "message", raw, parse_mode, markup, method)

    async def _send_document(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        return await self._send_file(bot, method, data, files, "document")

    async def _send_photo(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        return await self._send_file(bot, method, data, files, "photo")

    async def _send_file(
        self, bot: Bot, method: Any, data: dict[str, Any], files: dict[str, InputFile], kind: str
    ) -> Any:
        chat = self._chat(data["chat_id"])
        raw = data.get("caption")
        parse_mode = data.get("parse_mode")
        plain, entities = self._parse(raw or "", parse_mode, data.get("caption_entities"))
        if _u16(plain) > MAX_CAPTION:
            raise _ApiError("Bad Request: message caption is too long")
        markup = self._markup(data.get("reply_markup"))
        file_name, content, ref = await self._input_file(bot, data[kind], files, kind)
        message = self._new_message(bot, chat)
        if kind == "document":
            message["document"] = {
                **ref,
                "file_name": file_name,
                "mime_type": mimetypes.guess_type(file_name)[0] or "application/octet-stream",
            }
        else:
            small = {
                **ref,
                "file_unique_id": ref["file_unique_id"] + "s",
                "width": 90,
                "height": 90,
            }
            message["photo"] = [small, {**ref, "width": 1280, "height": 960}]
        if plain:
            message["caption"] = plain
            if entities:
                message["caption_entities"] = entities
        result, sent = self._store_sent(message, kind, raw, parse_mode, markup, method)
        return result, replace(sent, file_name=file_name, content=content)

    async def _input_file(
        self, bot: Bot, value: str, files: dict[str, InputFile], kind: str
    ) -> tuple[str, bytes | None, dict[str, Any]]:
        """File name, bytes (when we have them) and the file reference of a sent file."""
        default_name = "photo.jpg" if kind == "photo" else "document"
        if value.startswith("attach://"):
            input_file = files[value.removeprefix("attach://")]
            name = input_file.filename or default_name
            if isinstance(input_file, URLInputFile):  # no network: Telegram would fetch it
                return name, None, self._remote()
            content = b"".join([chunk async for chunk in input_file.read(bot)])
            if not content:
                raise _ApiError("Bad Request: file must be non-empty")
            ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
            return name, content, self.register_file(content, ext=ext)
        known = self._files.get(value)
        if known is not None:
            return known.path.rsplit("/", 1)[-1], known.content, _file_ref(known)
        if value.startswith(("http://", "https://")):
            name = value.rsplit("/", 1)[-1] or default_name
            return name, None, self._remote()
        raise _ApiError("Bad Request: wrong file identifier/HTTP URL specified")

    def _remote(self) -> dict[str, Any]:
        self._counter += 1
        return {
            "file_id": f"LOCAL-URL-{self._counter:06d}",
            "file_unique_id": f"R{self._counter:06d}",
        }

    async def _edit_text(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        return self._edit(bot, method, data, "text")

    async def _edit_caption(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        return self._edit(bot, method, data, "caption")

    async def _edit_markup(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        return self._edit(bot, method, data, None)

    def _edit(self, bot: Bot, method: Any, data: dict[str, Any], field_name: str | None) -> Any:
        raw = data.get(field_name or "", "")
        parse_mode = data.get("parse_mode")
        plain, entities = "", []
        if field_name is not None:
            plain, entities = self._parse(raw, parse_mode, data.get(f"{field_name}_entities"))
            if field_name == "text" and not plain:
                raise _ApiError("Bad Request: message text is empty")
            if field_name == "text" and _u16(plain) > MAX_TEXT:
                raise _ApiError("Bad Request: message is too long")
            if field_name == "caption" and _u16(plain) > MAX_CAPTION:
                raise _ApiError("Bad Request: message caption is too long")
        markup = self._markup(data.get("reply_markup"))
        if markup.reply or markup.remove:
            raise _ApiError("Bad Request: inline keyboard expected")
        if "inline_message_id" in data:
            return True, Sent(
                kind="edit",
                chat_id=None,
                text=raw,
                parse_mode=parse_mode,
                buttons=markup.rows,
                plain=plain,
                method=method,
            )
        chat_id, message_id = data.get("chat_id"), data.get("message_id")
        if chat_id is None or message_id is None:
            raise _ApiError("Bad Request: message identifier is not specified")
        stored = self._messages.get((self._chat(chat_id)["id"], message_id))
        if stored is None or stored.deleted:
            raise _ApiError("Bad Request: message to edit not found")
        if not stored.from_bot:
            raise _ApiError("Bad Request: message can't be edited")
        new = dict(stored.json)  # only top-level keys change below; see `message`
        if field_name == "text":
            if "text" not in new:
                raise _ApiError("Bad Request: there is no text in the message to edit")
            new["text"] = plain
            _set_or_drop(new, "entities", entities)
        elif field_name == "caption":
            if stored.kind not in {"document", "photo"}:
                raise _ApiError("Bad Request: there is no caption in the message to edit")
            _set_or_drop(new, "caption", plain)
            _set_or_drop(new, "caption_entities", entities)
        # Telegram drops the inline keyboard when an edit does not repeat it
        _set_or_drop(new, "reply_markup", markup.inline)
        if new == stored.json:
            raise _ApiError(NOT_MODIFIED)
        new["edit_date"] = self.now()
        stored.json = new
        if field_name is not None:
            stored.raw_text, stored.parse_mode = raw, parse_mode
        return new, replace(self._view(stored, "edit"), method=method)

    async def _delete_message(self, bot: Bot, method: Any, data: dict[str, Any], files: Any) -> Any:
        chat = self._chat(data["chat_id"])
        stored = self._messages.get((chat["id"], data["message_id"]))
        if stored is None or stored.deleted:
            raise _ApiError("Bad Request: message to delete not found")
        stored.deleted = True
        return True, Sent(
            kind="delete",
            chat_id=chat["id"],
            message_id=data["message_id"],
            text=stored.raw_text,
            parse_mode=stored.parse_mode,
            method=method,
        )

    async def _answer_callback(
        self, bot: Bot, method: Any, data: dict[str, Any], files: Any
    ) -> Any:
        query_id = data["callback_query_id"]
        if query_id in self._answered:
            raise _ApiError(
                "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        text = data.get("text")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER:
            raise _ApiError("Bad Request: MESSAGE_TOO_LONG")
        self._answered.add(query_id)
        sent = Sent(
            kind="callback_answer",
            chat_id=self._callbacks.get(query_id),
            text=text,
            plain=text,
            show_alert=bool(data.get("show_alert")),
            method=method,
        )
        return True, sent

    async def _send_chat_action(
        self, bot: Bot, method: Any, data: dict[str, Any], files: Any
    ) -> Any:
        chat = self._chat(data["chat_id"])
        if data.get("action") not in CHAT_ACTIONS:
            raise _ApiError("Bad Request: wrong type of the chat action")
        return True, Sent(kind="action", chat_id=chat["id"], text=data["action"], method=method)

    # --- helpers --------------------------------------------------------------------------

    def _chat(self, chat_id: int | str) -> dict[str, Any]:
        try:
            key = int(chat_id)
        except (TypeError, ValueError):
            raise _ApiError("Bad Request: chat not found") from None
        chat = self._chats.get(key)
        if chat is None:
            # A chat nobody registered: Telegram knows every user who started the bot, and the
            # outbox tests send to bare ids, so such a chat is a private one.
            chat = {"id": key, "type": "private", "first_name": f"User {key}"}
            if key < 0:
                chat = {"id": key, "type": "supergroup", "title": f"Chat {key}"}
            self._chats[key] = chat
        return chat

    @staticmethod
    def _parse(
        raw: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
    ) -> tuple[str, list[dict[str, Any]]]:
        if parse_mode is not None and parse_mode.upper() == "HTML":
            try:
                plain, parsed = parse_html(raw)
            except HtmlError as err:
                raise _ApiError(f"Bad Request: can't parse entities: {err}") from None
            return _strip(plain, parsed)
        # MarkdownV2 is not checked: the bot speaks HTML; explicit entities are taken as given
        return _strip(raw, list(entities or []))

    @staticmethod
    def _markup(markup: dict[str, Any] | None) -> _Markup:
        if not markup:
            return _Markup(rows=[], inline=None)
        if "inline_keyboard" in markup:
            rows = [[_inline_button(b) for b in row] for row in markup["inline_keyboard"]]
            if sum(len(row) for row in rows) > MAX_BUTTONS:
                raise _ApiError("Bad Request: reply markup is too long")
            return _Markup(rows=rows, inline=markup)
        if "keyboard" in markup:
            rows = []
            for row in markup["keyboard"]:
                buttons = []
                for b in row:
                    b = {"text": b} if isinstance(b, str) else b
                    if not b.get("text"):
                        raise _ApiError("Bad Request: keyboard button text is empty")
                    buttons.append(
                        Button(b["text"], request_contact=bool(b.get("request_contact")))
                    )
                rows.append(buttons)
            return _Markup(rows=rows, inline=None, reply=True)
        if markup.get("remove_keyboard"):
            return _Markup(rows=[], inline=None, remove=True)
        return _Markup(rows=[], inline=None)  # force_reply: nothing to show

    def _new_message(self, bot: Bot, chat: dict[str, Any]) -> dict[str, Any]:
        return {
            "message_id": self.next_message_id(chat["id"]),
            "date": self.now(),
            "chat": chat,
            "from": self._bot_user(bot),
        }

    def _store_sent(
        self,
        message: dict[str, Any],
        kind: str,
        raw: str | None,
        parse_mode: str | None,
        markup: _Markup,
        method: TelegramMethod[Any],
    ) -> tuple[dict[str, Any], Sent]:
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        if markup.inline is not None:
            message["reply_markup"] = markup.inline
        self._messages[(chat_id, message_id)] = _Stored(
            json=message, from_bot=True, kind=kind, raw_text=raw, parse_mode=parse_mode
        )
        if markup.reply:
            self._reply_keyboard[chat_id] = (message_id, markup.rows)
        elif markup.remove:
            self._reply_keyboard.pop(chat_id, None)
        sent = Sent(
            kind=kind,
            chat_id=chat_id,
            message_id=message_id,
            text=raw,
            parse_mode=parse_mode,
            buttons=markup.rows,
            reply_keyboard=markup.reply,
            remove_keyboard=markup.remove,
            plain=message.get("text", message.get("caption", "")),
            method=method,
        )
        return message, sent

    @staticmethod
    def _view(stored: _Stored, kind: str) -> Sent:
        message = stored.json
        inline = message.get("reply_markup") or {}
        return Sent(
            kind=kind,
            chat_id=message["chat"]["id"],
            message_id=message["message_id"],
            text=stored.raw_text,
            parse_mode=stored.parse_mode,
            buttons=[[_inline_button(b) for b in row] for row in inline.get("inline_keyboard", [])],
            plain=message.get("text", message.get("caption", "")),
        )

    def _record(self, sent: Sent) -> None:
        self._sent.append(sent)
        self._by_chat.setdefault(sent.chat_id, []).append(sent)
        for listener in list(self._listeners):
            try:
                listener(sent)
            except Exception:  # a printing listener must not break the bot
                log.exception("on_send listener failed")


def _inline_button(button: dict[str, Any]) -> Button:
    text = button.get("text") or ""
    if not text:
        raise _ApiError("Bad Request: inline keyboard button text is empty")
    data, url = button.get("callback_data"), button.get("url")
    if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
        raise _ApiError("Bad Request: BUTTON_DATA_INVALID")
    if url is not None and not url.startswith(("http://", "https://", "tg://")):
        raise _ApiError(f"Bad Request: inline keyboard button URL '{url}' is invalid")
    actions = {k for k in button if k != "text"}
    if not actions:
        raise _ApiError(
            "Bad Request: can't parse inline keyboard button: "
            "Text buttons are unallowed in the inline keyboard"
        )
    return Button(text, callback_data=data, url=url)


def _set_or_drop(target: dict[str, Any], key: str, value: Any) -> None:
    if value:
        target[key] = value
    else:
        target.pop(key, None)


def _file_ref(stored: _File) -> dict[str, Any]:
    return {"file_id": stored.file_id, "file_unique_id": stored.unique_id, "file_size": stored.size}
