"""WeCom (企业微信) settings: the second channel, a self-built app, which is on when
WECOM_TOKEN is set and then needs all of its other settings (WeCom always encrypts)."""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

from app.settings.common import CallbackToken, HttpUrlText, aes_key, shown


class WeComSettings(BaseSettings):
    """WeCom (企业微信): the self-built app channel"""

    # First: the checks of the four after it read it.
    wecom_token: CallbackToken = Field(
        "",
        description="The Token of the app's 接收消息 API settings (3-32 letters or digits); "
        "setting it turns the channel on and requires `WECOM_AES_KEY`, `WECOM_CORP_ID`, "
        "`WECOM_AGENT_ID` and `WECOM_SECRET`",
        json_schema_extra=shown("(empty: channel off)"),
    )
    wecom_aes_key: str = Field(
        "",
        validate_default=True,
        description="The app's EncodingAESKey (43 letters or digits); WeCom always encrypts",
    )
    wecom_corp_id: str = Field(
        "",
        validate_default=True,
        description="企业ID: the receiveid every callback is encrypted for, and gettoken's corpid",
    )
    wecom_agent_id: str = Field(
        "",
        validate_default=True,
        description="The app's numeric AgentId; callbacks for another agent get 400",
    )
    wecom_secret: str = Field(
        "", validate_default=True, description="The app's Secret, for `gettoken`"
    )
    wecom_api_base_url: HttpUrlText = Field(
        "https://qyapi.weixin.qq.com",
        description="Base of every call to WeCom (gettoken, message/send): an outbound proxy "
        "or the simulator",
    )
    wecom_handoff_reply: str = Field(
        "好的，已为您通知人工客服，请稍候，同事会尽快与您联系。",
        description="What a member who asks for a person is told: self-built apps cannot "
        "transfer to a customer-service queue",
        json_schema_extra=shown('a short "a colleague will contact you"'),
    )

    @field_validator("wecom_aes_key", "wecom_corp_id", "wecom_agent_id", "wecom_secret")
    @classmethod
    def _wecom_complete(cls, v: str, info: ValidationInfo) -> str:
        """With WECOM_TOKEN set, the channel needs all of its settings (WeCom only encrypts)."""
        if not v and info.data.get("wecom_token"):
            raise ValueError("required when WECOM_TOKEN is set")
        if info.field_name == "wecom_aes_key":
            aes_key(v)
        if v and info.field_name == "wecom_agent_id" and not re.fullmatch(r"\d{1,10}", v):
            raise ValueError("must be the app's numeric AgentId")
        return v

    @property
    def wecom_configured(self) -> bool:
        return bool(self.wecom_token)
