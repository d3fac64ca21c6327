"""Safety settings: the limits that keep one customer, a crowd or a password guesser from
taking the service's time, gathered so that they can be tuned together."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from app.settings.common import shown


class SafetySettings(BaseSettings):
    """Safety: rate limit, flood protection, sign-in throttle"""

    rate_limit_messages: int = Field(
        10,
        ge=0,
        description="Questions one customer may send per window (both channels) before "
        "getting `RATE_LIMIT_REPLY`; 0 disables",
    )
    rate_limit_window_s: int = Field(
        60, ge=1, le=86400, description="The rate limit's window (fixed, aligned to the clock)"
    )
    rate_limit_reply: str = Field(
        "您发送得有点快，我正在逐条处理。请稍等一分钟再发新的问题，谢谢理解！",
        description="Passive reply to the first question over the limit in a window; later "
        "ones get none",
        json_schema_extra=shown('a polite "please slow down"'),
    )
    flood_max_backlog: int = Field(
        200,
        ge=0,
        description="With this many questions unanswered (all customers), new questions get "
        "`FLOOD_REPLY`; 0 disables. Counted afresh for every question once the backlog "
        "passes half of it, at most once a second per process below that",
    )
    flood_reply: str = Field(
        "现在咨询的人比较多，我暂时忙不过来。请过几分钟再问我一次，给您添麻烦了！",
        description="Passive reply to a question turned away under a flood",
        json_schema_extra=shown('a polite "we are busy, ask again in a few minutes"'),
    )

    # --- the sign-in throttle (app/safety/signin.py) -------------------------------------
    login_free_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="Failed sign-ins (page, API or HTTP Basic) one username may have from "
        "one client address before each further try there waits: 1 s, doubling with every "
        "failure, up to `LOGIN_BACKOFF_MAX_S` (429 with `Retry-After`). Only that pair "
        "waits: the same person from another address and colleagues behind the same proxy "
        "sign in as usual",
    )
    login_backoff_max_s: int = Field(
        300,
        ge=1,
        le=86400,
        description="The longest wait between tries of a guessing (username, address) pair; "
        "shorter than `LOGIN_FAILURE_WINDOW_S`",
    )
    login_failure_window_s: int = Field(
        3600,
        ge=10,
        le=7 * 86400,
        description="A pair's (and a username's) failures are forgotten this long after the "
        "last one; a correct password forgets the pair's at once",
    )
    login_user_max_failures: int = Field(
        100,
        ge=1,
        description="Failures of one username from all addresses in the window beyond which "
        "it has no free tries (guessing from many addresses): an address that failed for it "
        "waits from its first failure; an address that has not failed still signs in at once",
    )

    @model_validator(mode="after")
    def _backoff_inside_window(self) -> Self:
        if self.login_backoff_max_s >= self.login_failure_window_s:
            # The pair would be forgotten before its wait ends, free tries and all.
            raise ValueError("LOGIN_BACKOFF_MAX_S must be shorter than LOGIN_FAILURE_WINDOW_S")
        return self
