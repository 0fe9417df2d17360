"""`voucher-bot demo` as a real subprocess, driven line by line through stdin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conversation.journey import CHILD_IIN
from tests.conversation.seed import PARENT_IIN

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = f"""\
# A parent in Kazakh, from /start to the application number.
/start
1
# the three rules, then Join the queue
1
2
3
4
/contact
/code
{PARENT_IIN}
/sms yes
# Request data, then Correct
1
1
{CHILD_IIN}
/sms yes
1
1
# general queue, first state order type, no benefit
1
1
2
# first provider, first group that fits, Continue
1
1
1
# Telegram, in Kazakh
3
1
# the three consents, then Submit; the number comes from the submitter, a moment later
1
2
3
5
/wait тіркеуге жіберілді
/quit
"""


def test_demo_walks_to_an_application_number() -> None:
    env = {**os.environ, "DEMO_LANG": "kk"}
    for name in ("VOUCHER_API_URL", "DATABASE_PATH", "BOT_TOKEN"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--script"],
        input=SCRIPT,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    # The parent's phone received the ed24 code and two 1414 SMS (parent, child).
    assert re.search(r"📱 ed24\.kz: .*\d{4}", out)
    assert out.count("📱 1414:") == 2
    # Every step header appeared, in Kazakh, and the application number came back.
    for step in range(1, 6):
        assert f"Қадам {step}/5" in out
    assert "Шаг " not in out
    last_step = out.rsplit("Қадам 5/5", 1)[1]
    assert re.search(r"№\s*\d{5}", last_step), out[-3000:]
    # Nothing personal went to stderr (the log): no IIN, no phone.
    assert PARENT_IIN not in done.stderr and CHILD_IIN not in done.stderr
    assert "7015550101" not in done.stderr
