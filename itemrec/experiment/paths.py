"""Where itemrec keeps files between runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$ITEMREC_DATA`, else `$XDG_CACHE_HOME/itemrec`, else `~/.cache/itemrec`: fetched datasets,
    and finished runs' artifacts (`runs/<run id>/`)."""
    if os.environ.get("ITEMREC_DATA"):
        return Path(os.environ["ITEMREC_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "itemrec"
