"""Progress of long loops: a tqdm bar on a terminal, log lines elsewhere.

On a terminal the bar is at most :data:`WIDTH` columns wide with a short description. When stderr is not a
terminal (a log file, CI, ``nohup``) the bar is off and a line ``desc: i/n (x%), elapsed, eta, postfix`` is logged
every ``every`` seconds, so a run writing to a file shows it is alive long before an epoch ends.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, Dict, Iterable, Iterator, Optional

LOG = logging.getLogger("torchcert.progress")
#: widest progress bar, in columns
WIDTH = 120


class Progress:
    """Iterate ``items`` with progress shown as the module docstring says; ``update(**postfix)`` sets the
    values shown next to it (a bar's postfix, or the end of the log line)."""

    def __init__(self, items: Iterable[Any], total: Optional[int], desc: str, enabled: bool = True,
                 every: float = 30.0, terminal: Optional[bool] = None) -> None:
        self.items, self.total, self.desc, self.every = items, total, desc, every
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.enabled = enabled
        self.postfix: Dict[str, Any] = {}
        self._bar = None
        if enabled and self.terminal:
            from tqdm import tqdm

            self._bar = tqdm(items, total=total, desc=desc, ncols=WIDTH, leave=False)

    def update(self, **postfix: Any) -> None:
        self.postfix = postfix
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=False)

    def __iter__(self) -> Iterator[Any]:
        if self._bar is not None:
            yield from self._bar
            return
        start = last = time.monotonic()
        for i, item in enumerate(self.items):
            yield item
            now = time.monotonic()
            if self.enabled and now - last >= self.every:
                last = now
                LOG.info("%s", self.line(i + 1, now - start))

    def line(self, done: int, elapsed: float) -> str:
        """``desc: done/total (pct), elapsed, eta, k=v ...``."""
        text = f"{self.desc}: {done}"
        if self.total:
            eta = elapsed / done * (self.total - done)
            text += f"/{self.total} ({100 * done / self.total:.0f}%), {elapsed:.0f} s, eta {eta:.0f} s"
        else:
            text += f", {elapsed:.0f} s"
        extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return f"{text}{', ' + extra if extra else ''}"
