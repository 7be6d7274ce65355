"""The ``console://`` apprise channel: prints a readable alert on standard output."""

from __future__ import annotations

import sys
from typing import Any

from apprise.decorators import notify

RULE = "─" * 72


def render_console(title: str, body: str) -> str:
    """An alert framed for a terminal."""
    return f"{RULE}\n{title}\n{RULE}\n{body}\n"


@notify(on="console", name="Flashpoint console")  # type: ignore[untyped-decorator,no-untyped-call]
def console_channel(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    """Write the alert to standard output."""
    sys.stdout.write(render_console(title, body))
    sys.stdout.flush()
    return True
