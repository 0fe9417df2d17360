"""A person in a Telegram chat, for tests and the demo: builds real updates, feeds the Dispatcher.

Every call builds an `aiogram.types.Update` the way Telegram would deliver it, feeds it with
`Dispatcher.feed_update` and returns what the bot sent to this chat meanwhile. Like polling,
a TelegramMethod returned by a handler is executed; unlike polling, errors are not swallowed,
so a failing handler fails the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update

from bot.local_session import Button, LocalBotSession, Sent

Predicate = Callable[[Sent], bool] | str


class LocalChat:
    """One user in one chat with the bot."""

    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        *,
        user_id: int = 1001,
        chat_id: int | None = None,
        first_name: str = "Айгүл",
        language_code: str | None = "kk",
        chat_type: str = "private",
        phone: str = "+77012345678",
    ) -> None:
        if not isinstance(bot.session, LocalBotSession):
            raise TypeError("LocalChat needs a Bot whose session is a LocalBotSession")
        self.dp = dp
        self.bot = bot
        self.session: LocalBotSession = bot.session
        self.user_id = user_id
        self.chat_id = user_id if chat_id is None else chat_id
        self.phone = phone  # what a request_contact button shares
        self.user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            self.user["language_code"] = language_code
        if chat_type == "private":
            self.chat: dict[str, Any] = {
                "id": self.chat_id,
                "type": "private",
                "first_name": first_name,
            }
        else:
            self.chat = {"id": self.chat_id, "type": chat_type, "title": "Kezek test chat"}
        self.session.register_chat(self.chat)
        # History up to here was handed to the caller; wait_for looks only after it.
        self._seen = 0
        self._arrived = asyncio.Event()
        self._unsubscribe = self.session.on_send(self._on_send)

    # --- what the user does ---------------------------------------------------------------

    async def send(self, text: str) -> list[Sent]:
        """Send a text message (commands too)."""
        message = self._message(text=text)
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return await self._feed_message(message)

    async def share_contact(self, phone: str, *, own: bool = True) -> list[Sent]:
        """Share a contact: one's own (user_id matches) or someone else's card (own=False)."""
        contact: dict[str, Any] = {
            "phone_number": phone,
            "first_name": self.user["first_name"],
            # A forwarded card carries the other person's id, never the sender's.
            "user_id": self.user_id if own else self.user_id + 1_000_000,
        }
        if not own:
            contact["first_name"] = "Бауыржан"
        return await self._feed_message(self._message(contact=contact))

    async def send_document(
        self,
        content: bytes,
        file_name: str,
        mime_type: str,
        *,
        size: int | None = None,
        media_group_id: str | None = None,
    ) -> list[Sent]:
        """Upload a document; `size` claims a size (e.g. too big) without the bytes."""
        ext = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
        ref = self.session.register_file(content, size=size, ext=ext)
        document = {**ref, "file_name": file_name, "mime_type": mime_type}
        return await self._feed_message(
            self._message(document=document), media_group_id=media_group_id
        )

    async def send_photo(self, content: bytes, *, media_group_id: str | None = None) -> list[Sent]:
        """Send a photo; Telegram delivers it in sizes, the largest last."""
        ref = self.session.register_file(content, ext=".jpg")
        small = {**ref, "file_unique_id": ref["file_unique_id"] + "s", "width": 90, "height": 68}
        photo = [small, {**ref, "width": 1280, "height": 960}]
        return await self._feed_message(self._message(photo=photo), media_group_id=media_group_id)

    async def send_sticker(self) -> list[Sent]:
        """Send a sticker (input the bot does not expect)."""
        ref = self.session.register_file(b"RIFF-sticker", ext=".webp")
        sticker = {
            **ref,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
        }
        return await self._feed_message(self._message(sticker=sticker))

    async def send_voice(self) -> list[Sent]:
        """Send a voice note (input the bot does not expect)."""
        ref = self.session.register_file(b"OggS-voice", ext=".ogg")
        voice = {**ref, "duration": 3, "mime_type": "audio/ogg"}
        return await self._feed_message(self._message(voice=voice))

    async def press(self, button: str | int, *, message_id: int | None = None) -> list[Sent]:
        """Press a button by exact text, unique substring or flat 0-based index.

        Looks at the newest bot message with inline buttons and the reply keyboard on screen,
        newest first; with `message_id`, only at that message's inline buttons.
        """
        boards = self._keyboards(message_id)
        if not boards:
            raise AssertionError(f"no buttons to press in chat {self.chat_id}\n{self._dump()}")
        found, board = _find(button, boards)
        if board.inline:
            if found.callback_data is None:
                raise AssertionError(f"button {found.text!r} is not a callback button: {found}")
            return await self._callback(found.callback_data, board.message_id)
        if found.request_contact:
            return await self.share_contact(self.phone)
        return await self.send(found.text)

    async def press_data(self, callback_data: str, *, message_id: int) -> list[Sent]:
        """Press a callback button with any data (forged or stale) on any message."""
        return await self._callback(callback_data, message_id)

    async def feed(self, update: Update) -> list[Sent]:
        """Feed a raw update as is (duplicates, fuzzing); returns what the bot sent here."""
        before = len(self.session.sent(self.chat_id))
        result = await self.dp.feed_update(self.bot, update)
        if isinstance(result, TelegramMethod):
            # Polling executes a method returned by a handler (the webhook-reply style).
            await self.bot(result)
        history = self.session.sent(self.chat_id)
        self._seen = len(history)
        return history[before:]

    # --- what the test looks at -----------------------------------------------------------

    def history(self) -> list[Sent]:
        """Everything the bot sent to this chat, in order."""
        return self.session.sent(self.chat_id)

    def last(self) -> Sent:
        """The newest message or edit the user can see (chat actions and toasts skipped)."""
        for sent in reversed(self.history()):
            if sent.visible:
                return sent
        raise AssertionError(f"the bot has sent nothing to chat {self.chat_id}")

    async def wait_for(
        self,
        predicate: Predicate,
        timeout: float = 5.0,  # noqa: ASYNC109 - bounds a wait on our own event
    ) -> Sent:
        """Wait for a record the bot sends on its own (e.g. from a background task).

        Looks at what arrived after the last record a previous call returned, so a message
        that came between that call and this one is not missed; a string matches visible
        messages containing it.
        """
        match = _predicate(predicate)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            history = self.session.sent(self.chat_id)
            for index in range(self._seen, len(history)):
                if match(history[index]):
                    self._seen = index + 1
                    return history[index]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching message within {timeout} s in chat {self.chat_id}\n"
                    + self._dump()
                )
            # No await since reading the history: nothing can have arrived unnoticed.
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    def close(self) -> None:
        """Stop listening to the session."""
        self._unsubscribe()

    # --- building updates -----------------------------------------------------------------

    def _message(self, **content: Any) -> dict[str, Any]:
        message = {
            "message_id": self.session.next_message_id(self.chat_id),
            "date": self.session.now(),
            "chat": self.chat,
            "from": self.user,
            **content,
        }
        self.session.store_incoming(message)
        return message

    async def _feed_message(
        self, message: dict[str, Any], *, media_group_id: str | None = None
    ) -> list[Sent]:
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        return await self._feed({"message": message})

    async def _callback(self, data: str, message_id: int) -> list[Sent]:
        message = self.session.message(self.chat_id, message_id)
        if message is None:  # deleted or never existed: Telegram sends an inaccessible message
            message = {"chat": self.chat, "message_id": message_id, "date": 0}
        query = {
            "id": self.session.new_callback_id(self.chat_id),
            "from": self.user,
            "chat_instance": f"local-{self.chat_id}",
            "message": message,
            "data": data,
        }
        return await self._feed({"callback_query": query})

    async def _feed(self, payload: dict[str, Any]) -> list[Sent]:
        data = {"update_id": self.session.next_update_id(), **payload}
        return await self.feed(Update.model_validate(data, context={"bot": self.bot}))

    def _keyboards(self, message_id: int | None) -> list[_Keyboard]:
        if message_id is not None:
            current = self.session.current(self.chat_id, message_id)
            if current is None or not current.buttons:
                raise AssertionError(f"message {message_id} has no inline buttons\n{self._dump()}")
            return [_Keyboard(current.buttons, message_id, inline=True)]
        boards = []
        inline = self.session.last_inline(self.chat_id)
        if inline is not None and inline.message_id is not None:
            boards.append(_Keyboard(inline.buttons, inline.message_id, inline=True))
        reply = self.session.reply_keyboard(self.chat_id)
        if reply is not None:
            boards.append(_Keyboard(reply[1], reply[0], inline=False))
        return sorted(boards, key=lambda b: b.message_id, reverse=True)

    def _on_send(self, sent: Sent) -> None:
        if sent.chat_id == self.chat_id:
            self._arrived.set()

    def _dump(self) -> str:
        lines = ["history:"]
        for sent in self.history():
            shown = sent.plain if sent.plain is not None else sent.text
            lines.append(f"  [{sent.kind} #{sent.message_id}] {shown!r} {sent.button_texts}")
        return "\n".join(lines)


class _Keyboard:
    __slots__ = ("inline", "message_id", "rows")

    def __init__(self, rows: list[list[Button]], message_id: int, *, inline: bool) -> None:
        self.rows = rows
        self.message_id = message_id
        self.inline = inline

    @property
    def flat(self) -> list[Button]:
        return [b for row in self.rows for b in row]


def _find(wanted: str | int, boards: list[_Keyboard]) -> tuple[Button, _Keyboard]:
    """Exact text first (newest keyboard first), then a unique substring; ints index the newest."""
    listing = "; ".join(
        f"{'inline' if b.inline else 'reply'} #{b.message_id}: {[x.text for x in b.flat]}"
        for b in boards
    )
    if isinstance(wanted, int):
        flat = boards[0].flat
        if not 0 <= wanted < len(flat):
            raise AssertionError(f"no button #{wanted}; buttons: {listing}")
        return flat[wanted], boards[0]
    for board in boards:
        for button in board.flat:
            if button.text == wanted:
                return button, board
    for board in boards:
        hits = [b for b in board.flat if wanted in b.text]
        if len(hits) == 1:
            return hits[0], board
        if len(hits) > 1:
            raise AssertionError(f"{wanted!r} matches several buttons: {hits}; {listing}")
    raise AssertionError(f"no button {wanted!r}; buttons: {listing}")


def _predicate(predicate: Predicate) -> Callable[[Sent], bool]:
    if isinstance(predicate, str):
        needle = predicate
        return lambda sent: sent.visible and needle in (sent.plain or "")
    return predicate
