"""Constants and helpers shared by the simulator tests."""

from __future__ import annotations

import requests

APP_ID = "wx_sim_test_app"
APP_SECRET = "sim-secret-0123456789"


class FakeClock:
    """Token lifetimes are hours long; tests move time instead of waiting."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fetch_token(http: requests.Session, base: str) -> str:
    resp = http.get(
        f"{base}/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET},
        timeout=5,
    )
    return resp.json()["access_token"]
