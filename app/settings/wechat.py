"""WeChat Official Account settings: the first channel's credentials, the checks on its
callbacks, what it replies, and how answers reach the customer (async or passive)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

from app.settings.common import CallbackToken, HttpUrlText, aes_key, shown


class WeChatSettings(BaseSettings):
    """WeChat Official Account: credentials, callbacks, replies, reply modes, pictures"""

    wechat_token: CallbackToken = Field(
        "",
        description="The Token set in the Official Account console (3-32 letters or digits)",
        json_schema_extra=shown("(empty: demo mode)"),
    )
    wechat_app_id: str = Field("", description="AppID of the Official Account")
    wechat_app_secret: str = Field("", description="AppSecret of the Official Account")
    # Before wechat_require_encryption: its check reads this one.
    wechat_aes_key: str = Field(
        "",
        description="EncodingAESKey (43 letters or digits); needed for safe and compatibility mode",
    )
    wechat_require_encryption: bool = Field(
        False,
        description="Accept only encrypted callbacks (safe or compatibility mode, "
        "`encrypt_type=aes`); a plaintext `POST /wechat` gets 403, so a forger needs the "
        "EncodingAESKey and not just the Token. Needs `WECHAT_AES_KEY`. Off, plaintext is "
        "accepted too (while the account switches modes)",
    )
    wechat_api_base_url: HttpUrlText = Field(
        "https://api.weixin.qq.com",
        description="Base of every call to WeChat (token, send, typing, media): point it at "
        "an outbound proxy or the simulator",
    )
    wechat_max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Larger callback bodies (`/wechat` and `/wecom`) get 413",
    )
    wechat_timestamp_window_s: int = Field(
        300,
        ge=0,
        description="Callbacks (`/wechat` and `/wecom`) whose timestamp is further from now "
        "are refused (replays); 0 disables",
    )
    wechat_send_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Bounded retries of a WeChat or WeCom API call on -1, 5xx or an invalid token",
    )
    wechat_http_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Timeout of each call to WeChat's or WeCom's API (token, send, typing, media)",
    )
    wechat_welcome: str = Field(
        "您好，欢迎关注！我是智能客服，可以帮您查询发货、退换货、发票等问题。"
        "试试直接问我：“满多少包邮？”“退款多久到账？”",
        description="Reply to a new follower (subscribe)",
        json_schema_extra=shown("a greeting with example questions"),
    )
    wechat_menu_replies: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object: custom-menu `EventKey` → reply text, e.g. `{"CONTACT": '
        '"客服时间9:00-21:00"}`',
    )
    handoff_keywords: str = Field(
        "人工,转人工,人工客服,真人,客服电话,找客服",
        description="Comma-separated words: a short message containing one of them is handed "
        "to human agents (`transfer_customer_service`)",
    )

    # --- delivery: reply modes, pictures -------------------------------------------------
    wechat_reply_mode: Literal["async", "passive"] = Field(
        "async",
        description="`async`: empty acknowledgement, then the customer-service API (verified "
        "accounts). `passive`: the answer is the reply to WeChat's callback (unverified "
        'accounts, where that API answers 48001); see "Reply modes"',
    )
    wechat_passive_wait_s: float = Field(
        4.5,
        ge=0.5,
        le=4.8,
        description="Passive mode: how long each of WeChat's three tries is held waiting for "
        "the answer (0.5-4.8)",
    )
    wechat_passive_max_held: int = Field(
        6,
        ge=1,
        le=1000,
        description="Passive mode: tries held at once per web process; keep it below "
        "gunicorn's `--threads` so that acknowledgements always find a free thread. A try "
        'beyond it is not held: it gets the "on its way" reply at once (the answer comes '
        "with the customer's next message)",
    )
    wechat_passive_pending_text: str = Field(
        "您的问题我正在认真查询，答案马上就好。稍后请给我发一条任意消息（比如“1”），"
        "我就把答案发给您。",
        min_length=1,
        description="Passive mode: the reply to WeChat's last try when the answer is not "
        "ready; the answer then comes with the customer's next message",
        json_schema_extra=shown('"答案马上就好…发一条任意消息…"'),
    )
    wechat_passive_keep_s: int = Field(
        86400,
        ge=60,
        description="Passive mode: an answer that missed WeChat's tries is carried by the "
        "customer's next message only if it comes within this long of the question",
    )
    wechat_instant_faq: bool = Field(
        True,
        description="Web processes answer FAQ questions themselves (by characters or by "
        "meaning over an in-memory copy of the FAQ entries and their vectors, refreshed from "
        "Milvus every 60 s; no model) as the reply to the first request: WeChat in both "
        "modes, and WeCom",
    )
    wechat_typing: bool = Field(
        True,
        description='Show "typing…" to the customer while the model writes (async mode)',
    )
    wechat_media_max_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        description="Pictures larger than this are not downloaded further; the customer gets "
        "a polite reply",
    )
    wechat_image_context_s: int = Field(
        120,
        ge=0,
        description="Text the customer sent this many seconds before a picture is read "
        "together with it (0: none)",
    )
    ocr_max_pixels: int = Field(
        40_000_000,
        ge=10_000,
        description="Larger images (pictures from customers, and the OCR tools') are refused "
        "before decoding (decompression bombs)",
    )

    @field_validator("wechat_aes_key")
    @classmethod
    def _wechat_aes_shape(cls, v: str) -> str:
        return aes_key(v)

    @field_validator("wechat_require_encryption")
    @classmethod
    def _encryption_needs_key(cls, v: bool, info: ValidationInfo) -> bool:
        if v and not info.data.get("wechat_aes_key"):
            raise ValueError("needs WECHAT_AES_KEY (the EncodingAESKey) to decrypt callbacks")
        return v

    @property
    def wechat_configured(self) -> bool:
        return bool(self.wechat_token and self.wechat_app_id and self.wechat_app_secret)

    @property
    def handoff_words(self) -> list[str]:
        return [w.strip() for w in self.handoff_keywords.split(",") if w.strip()]
