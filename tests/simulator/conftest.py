"""Shared fixtures: a simulator on a fake clock, served on a real local port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from app.simulator.api import (
    ServerHandle,
    WeChatAPISimulator,
    create_simulator_app,
    serve_in_thread,
)
from tests.simulator.sim_helpers import APP_ID, APP_SECRET, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> WeChatAPISimulator:
    return WeChatAPISimulator(APP_ID, APP_SECRET, clock=clock)


@pytest.fixture
def server(sim: WeChatAPISimulator) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_simulator_app(sim))
    yield handle
    handle.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
