"""Scripted failures, so a test can replay what WeChat does on a bad day."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Fault:
    """The next ``times`` calls whose path ends with ``path_suffix`` fail this way.

    ``http_status`` other than 200 answers an HTML gateway page instead of JSON.
    ``errcode`` 0 with a ``delay`` means "slow but successful".
    """

    path_suffix: str
    errcode: int
    times: int = 1
    errmsg: str | None = None
    http_status: int = 200
    delay: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultQueue:
    """FIFO per match: faults injected first fire first. Not locked itself."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if not fault.path_suffix:
            raise ValueError("path_suffix must not be empty")
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        if fault.delay < 0:
            raise ValueError("delay must not be negative")
        self._faults.append(fault)

    def take(self, path: str) -> Fault | None:
        """Consumes one use of the first fault matching ``path``."""
        for i, fault in enumerate(self._faults):
            if path.endswith(fault.path_suffix):
                fault.times -= 1
                if fault.times == 0:
                    del self._faults[i]
                return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self._faults]

    def clear(self) -> None:
        self._faults.clear()
