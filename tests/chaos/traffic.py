"""Customers' questions sent through the WeChat callback while something breaks, and the
chaos report every run prints: sent, answered once, answered twice, lost, and the worst
acknowledgement time."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from app.simulator.callback_client import CallbackClient
from app.simulator.state import WeChatAPISimulator

#: WeChat drops a callback that is not acknowledged within this many seconds.
WECHAT_ACK_LIMIT_S = 5.0


@dataclass
class Traffic:
    """``count`` customers, one question each, ``every_s`` apart, in a thread."""

    client: CallbackClient
    count: int
    every_s: float = 0.5
    customers: list[str] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.customers = [f"o_chaos_{uuid.uuid4().hex[:10]}" for _ in range(self.count)]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._post_all, daemon=True)
        self._thread.start()

    def _post_all(self) -> None:
        for i, openid in enumerate(self.customers):
            started = time.monotonic()
            try:
                status = self.client.post(self.client.text(openid, f"第{i}个问题：几点下班？"))
                self.statuses.append(status.status_code)
            except Exception:  # noqa: BLE001 - a refused connection is a failed ack
                self.statuses.append(0)
            self.acks.append(time.monotonic() - started)
            time.sleep(self.every_s)

    @property
    def sent(self) -> int:
        return len(self.statuses)

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the traffic did not finish"

    def report(self, sim: WeChatAPISimulator) -> tuple[int, int, int]:
        """(answered once, answered twice or more, lost), printed as the chaos report."""
        counts: dict[str, int] = {}
        for m in sim.sent:
            counts[m["touser"]] = counts.get(m["touser"], 0) + 1
        once = sum(counts.get(o) == 1 for o in self.customers)
        twice = sum((counts.get(o) or 0) > 1 for o in self.customers)
        lost = sum(o not in counts for o in self.customers)
        print(
            f"sent {self.count}, answered once {once}, twice {twice}, lost {lost}, "
            f"worst acknowledgement {max(self.acks):.2f} s"
        )
        return once, twice, lost

    def answered(self, sim: WeChatAPISimulator) -> int:
        """Customers with at least one reply so far."""
        return len({m["touser"] for m in sim.sent} & set(self.customers))
