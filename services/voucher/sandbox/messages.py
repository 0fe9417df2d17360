"""Texts the sandbox "delivers" to a phone: the ed24.kz app code and the 1414 consent SMS."""

from __future__ import annotations

from services.validation import mask_tail


def otp_text(code: str) -> dict[str, str]:
    """The ed24.kz app notification carrying a one-time code."""
    return {
        "kk": f"ed24.kz: растау коды {code}. Кодты ешкімге бермеңіз.",
        "ru": f"ed24.kz: код подтверждения {code}. Никому не сообщайте код.",
    }


def consent_text(iin: str) -> dict[str, str]:
    """The 1414 SMS asking to allow access to an IIN's personal data (the IIN masked)."""
    masked = mask_tail(iin)
    return {
        "kk": (
            f"1414: ed24.kz ЖСН {masked} иесінің дербес деректеріне қол жеткізуге рұқсат "
            "сұрайды. Рұқсат беру үшін «иә», бас тарту үшін «жоқ» деп жауап беріңіз."
        ),
        "ru": (
            f"1414: ed24.kz запрашивает доступ к персональным данным владельца ИИН {masked}. "
            "Чтобы разрешить, ответьте «да», чтобы отказать — «нет»."
        ),
    }
