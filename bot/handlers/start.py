"""Before step 1: the language, what the parent needs, and the rules to accept.

language ──(Қазақша | Русский)──▶ rules ──(all ticked, Join the queue)──▶ phone
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.types import CallbackQuery

from bot.fsm.states import ApplicationForm
from bot.keyboards.common import language_keyboard
from bot.keyboards.start import RULES, JoinQueue, RuleToggle, rules_keyboard
from bot.view import Prompt, StepView


def create_router() -> Router:
    router = Router(name="start")
    router.callback_query.register(
        on_rule_toggled, RuleToggle.filter(), StateFilter(ApplicationForm.rules)
    )
    router.callback_query.register(on_join, JoinQueue.filter(), StateFilter(ApplicationForm.rules))
    return router


async def ask_language(view: StepView) -> None:
    """Greet in both languages and offer the choice, pre-selected from Telegram's language."""
    await view.send(view.tr("start-choose-language"), language_keyboard(view.locale), header=False)


async def ask_rules(view: StepView) -> None:
    """Say what is needed, then the rules as checkboxes."""
    await view.send(view.tr("start-welcome"), header=False)
    ticked = await _ticked(view)
    await view.send(_rules_text(view, ticked), rules_keyboard(view.tr, ticked), header=False)


async def on_rule_toggled(query: CallbackQuery, callback_data: RuleToggle, view: StepView) -> None:
    """Tick or untick one rule in place."""
    if callback_data.item not in RULES:
        await view.send(view.tr("button-outdated"), header=False)
        return
    ticked = await _ticked(view)
    ticked ^= {callback_data.item}
    await view.state.update_data(rules=sorted(ticked))
    await view.edit(query.message, _rules_text(view, ticked), rules_keyboard(view.tr, ticked))


async def on_join(query: CallbackQuery, view: StepView) -> None:
    """*Join the queue* opens step 1 only once every rule is ticked."""
    ticked = await _ticked(view)
    if ticked < set(RULES):
        text = _rules_text(view, ticked) + "\n\n⚠️ " + view.tr("rules-tick-all")
        await view.edit(query.message, text, rules_keyboard(view.tr, ticked))
        return
    await view.goto(ApplicationForm.phone, rules_accepted=True)


async def _ticked(view: StepView) -> set[int]:
    data = await view.state.get_data()
    return {int(i) for i in data.get("rules", []) if i in RULES}


def _rules_text(view: StepView, ticked: set[int]) -> str:
    lines = [view.tr("rules-title")]
    for item in RULES:
        mark = "✅" if item in ticked else "⬜"
        lines.append(f"{mark} {view.tr(f'rules-item-{item}')}")
    return "\n\n".join(lines)


PROMPTS: dict[str, Prompt] = {
    ApplicationForm.language.state: ask_language,
    ApplicationForm.rules.state: ask_rules,
}
