"""Pure renderers: draft JSON + a Translator in, escaped Telegram HTML out (no I/O, no aiogram)."""
