"""微信客服 (WeChat Customer Service, WeCom's ``kf`` API) settings: the third channel, on
when KF_TOKEN is set, which then needs the rest of its credentials (its callbacks are always
encrypted). Where each value is found: docs/kf-contract.md and the README's section."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

from app.settings.common import CallbackToken, HttpUrlText, aes_key, shown

#: sync_msg returns at most this many messages a call (its default and its maximum).
KF_SYNC_MAX = 1000


class KfSettings(BaseSettings):
    """微信客服 (WeChat Customer Service): the WeCom kf API channel"""

    # First: the checks of the three after it read it.
    kf_token: CallbackToken = Field(
        "",
        description="The Token of the callback 微信客服's events go to (3-32 letters or digits; "
        "its URL is this service's `/kf`); setting it turns the channel on and requires "
        "`KF_ENCODING_AES_KEY`, `KF_CORP_ID` and `KF_SECRET`",
        json_schema_extra=shown("(empty: channel off)"),
    )
    kf_encoding_aes_key: str = Field(
        "",
        validate_default=True,
        description="The EncodingAESKey of that callback (43 letters or digits): 微信客服 "
        "callbacks are always encrypted",
    )
    kf_corp_id: str = Field(
        "",
        validate_default=True,
        description="企业ID (我的企业 → 企业信息): the receiveid every callback is encrypted for, "
        "and gettoken's corpid",
    )
    kf_secret: str = Field(
        "",
        validate_default=True,
        description="For `gettoken`: the Secret of the self-built app named in 微信客服 → API → "
        "可调用接口的应用 (since 2023-12-01; companies from before may use 微信客服's own "
        "Secret there)",
    )
    kf_api_base_url: HttpUrlText = Field(
        "https://qyapi.weixin.qq.com",
        description="Base of every call to the kf API (gettoken, kf/sync_msg, kf/send_msg, "
        "kf/send_msg_on_event, kf/service_state, media/get): an outbound proxy or the simulator",
    )
    kf_servicer_userid: str = Field(
        "",
        description="A hand-off goes to this servicer (接待人员 UserID, service_state 3), who "
        "must be 正在接待; empty: to the waiting queue (待接入池, service_state 2)",
    )
    kf_welcome: str = Field(
        "您好，欢迎咨询！请直接输入您的问题，例如“怎么退货”“订单多久发货”，我马上为您解答。",
        description="Sent with the `welcome_code` of `enter_session` (kf/send_msg_on_event, "
        "within its 20 s, once) when WeChat offers one; empty: none",
        json_schema_extra=shown("a greeting with example questions"),
    )
    kf_handoff_reply: str = Field(
        "好的，正在为您转接人工客服，请稍候。",
        description="Told the customer, with the code the hand-off's kf/service_state/trans "
        "returns, when the session moves to a person; empty: nothing",
        json_schema_extra=shown('a short "connecting you to a person"'),
    )
    kf_sync_limit: int = Field(
        KF_SYNC_MAX,
        ge=1,
        le=KF_SYNC_MAX,
        description="Messages asked for per kf/sync_msg page (1-1000; WeChat may return fewer "
        "and says `has_more`); the cursor is stored after every page",
    )
    kf_sync_wait_s: float = Field(
        30.0,
        ge=0,
        description="How long a sync waits for another process reading the same 微信客服 "
        "account (one reader per open_kfid) before it gives up and is retried",
    )

    @field_validator("kf_encoding_aes_key", "kf_corp_id", "kf_secret")
    @classmethod
    def _kf_complete(cls, v: str, info: ValidationInfo) -> str:
        """With KF_TOKEN set, the channel needs all of its credentials."""
        if not v and info.data.get("kf_token"):
            raise ValueError("required when KF_TOKEN is set")
        if info.field_name == "kf_encoding_aes_key":
            aes_key(v)
        return v

    @property
    def kf_configured(self) -> bool:
        return bool(self.kf_token)
