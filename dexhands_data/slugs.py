"""File-name-safe forms of ids and paths: the one slug function of the package."""

from __future__ import annotations

import re


def slug(text: str, keep: str = "._-", sep: str = "_", strip: str = "._", max_len: int | None = 60,
         default: str = "episode") -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9]`` and ``keep`` replaced by ``sep``,
    ``strip`` characters trimmed from both ends, cut to ``max_len`` (None: no limit); ``default``
    when nothing is left. E.g. ``slug("RAIL/success/a b")`` -> ``"RAIL_success_a_b"``."""
    s = re.sub(f"[^A-Za-z0-9{re.escape(keep)}]+", sep, text).strip(strip)
    if max_len is not None:
        s = s[:max_len]
    return s or default
