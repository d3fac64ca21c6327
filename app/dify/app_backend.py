"""WeChat questions answered by a Dify chat app instead of the built-in pipeline.

For teams who build the whole conversation in Dify (ANSWER_BACKEND=dify): the worker asks
the app through Dify's service API (``POST /chat-messages``, blocking) and sends its
answer back exactly as it sends the pipeline's, so storage, exactly-once delivery, retries,
passive replies and WeCom all stay the same.

- Each customer keeps one Dify conversation while they keep talking (MEMORY_TTL_S), so the
  app's own memory works; a conversation Dify no longer knows starts a new one.
- The question goes out with phone, card and ID numbers masked (Dify stores its logs).
- The answer is made fit for WeChat as the pipeline's is: reasoning removed (``<think>``,
  and the ``<details>`` block older Dify versions render it in), Markdown flattened,
  sensitive words and personal numbers masked.
- Timeouts, 429 and 5xx raise ``DifyAppUnavailable``: the task retries with backoff and
  the customer is answered once Dify is back. A retry takes the answer Dify finished after
  the worker stopped waiting, if there is one (``earlier_answer``). Errors that a retry
  cannot fix (a wrong key, an app without a model) are logged and the customer gets the
  hand-off reply.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.pipeline.answer import Answer
from app.pipeline.postprocess import strip_think, to_plain_text
from app.pipeline.privacy import mask_pii
from app.pipeline.sensitive import SensitiveWordFilter
from app.store import DifyConversation

log = logging.getLogger(__name__)

#: How far Dify's clock may be behind ours when telling a retried question's answer from
#: an earlier one in the same words.
CLOCK_SLACK_S = 30
_DETAILS = re.compile(r"<details\b[^>]*>.*?</details>", re.DOTALL | re.IGNORECASE)


class DifyAppUnavailable(RuntimeError):
    """Dify did not answer now (timeout, 429, 5xx, connection): try again later."""


class DifyAppRejected(RuntimeError):
    """Dify refused the request for a reason a retry does not fix."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"Dify answered {status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class DifyAppClient:
    """``POST {api_url}/chat-messages`` in blocking mode; one ``requests.Session``."""

    def __init__(self, api_url: str, api_key: str, *, timeout_s: float) -> None:
        self.base = api_url.rstrip("/")
        self.url = self.base + "/chat-messages"
        self.timeout = (min(5.0, timeout_s), timeout_s)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def chat(
        self, query: str, user: str, conversation_id: str, inputs: dict[str, str]
    ) -> dict[str, Any]:
        body = {
            "inputs": inputs,
            "query": query,
            "response_mode": "blocking",
            "conversation_id": conversation_id,
            "user": user,
        }
        try:
            resp = self.session.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DifyAppUnavailable(f"Dify not reachable: {exc}") from exc
        if resp.status_code == 200:
            try:
                data = resp.json()
            except ValueError as exc:
                raise DifyAppUnavailable("Dify answered 200 without JSON") from exc
            if not isinstance(data, dict) or not isinstance(data.get("answer"), str):
                raise DifyAppRejected(200, "no_answer", "the app's reply has no answer text")
            return data
        raise _error(resp)

    def latest_message(self, user: str, conversation_id: str) -> dict[str, Any] | None:
        """The newest message of ``user``'s conversation (``GET /messages``, limit 1), or
        None when Dify no longer has the conversation."""
        params = {"user": user, "conversation_id": conversation_id, "limit": 1}
        found = self._first("/messages", params, missing_ok=True)
        return found[-1] if found else None  # Dify lists messages oldest first

    def latest_conversation(self, user: str) -> dict[str, Any] | None:
        """``user``'s most recently updated conversation (``GET /conversations``)."""
        found = self._first("/conversations", {"user": user, "limit": 1, "sort_by": "-updated_at"})
        return found[0] if found else None

    def _first(
        self, path: str, params: dict[str, Any], *, missing_ok: bool = False
    ) -> list[dict[str, Any]]:
        """The ``data`` of one of Dify's paginated lists; [] for a 404 when ``missing_ok``."""
        try:
            resp = self.session.get(self.base + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DifyAppUnavailable(f"Dify not reachable: {exc}") from exc
        if resp.status_code == 404 and missing_ok:
            return []
        if resp.status_code != 200:
            raise _error(resp)
        try:
            data = resp.json().get("data") or []
        except (ValueError, AttributeError) as exc:
            raise DifyAppUnavailable(f"Dify answered {path} without its JSON") from exc
        return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

    def app_info(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """The app's name and mode (``GET /info``; ``GET /parameters`` on Dify versions
        before /info, which say nothing of the mode). Raises as ``chat`` does."""
        for path in ("/info", "/parameters"):
            try:
                resp = self.session.get(self.base + path, timeout=timeout_s)
            except requests.RequestException as exc:
                raise DifyAppUnavailable(f"Dify not reachable: {exc}") from exc
            if not (resp.status_code == 404 and path == "/info"):
                break
        if resp.status_code != 200:
            raise _error(resp)
        try:
            data = resp.json()
        except ValueError as exc:
            raise DifyAppUnavailable(f"Dify answered {path} without JSON") from exc
        return data if isinstance(data, dict) and path == "/info" else {}


def _error(resp: requests.Response) -> DifyAppUnavailable | DifyAppRejected:
    """Dify's ``{code, message, status}`` error (or a proxy's page) as one of ours."""
    try:
        err = resp.json()
    except ValueError:
        err = {}
    code = str(err.get("code") or "") if isinstance(err, dict) else ""
    message = str(err.get("message") or resp.reason) if isinstance(err, dict) else resp.reason
    if resp.status_code == 429 or resp.status_code >= 500:
        return DifyAppUnavailable(f"Dify answered {resp.status_code} {code}: {message}")
    return DifyAppRejected(resp.status_code, code, message)


class DifyConversations:
    """Which Dify conversation a customer is in; on its own short sessions, so it never
    commits or rolls back the caller's transaction (like the pipeline's memory)."""

    def __init__(self, engine: sa.Engine, *, ttl_s: int) -> None:
        self.engine = engine
        self.ttl_s = ttl_s

    def current(self, customer: str) -> str:
        cutoff = datetime.now(UTC) - timedelta(seconds=self.ttl_s)
        with Session(self.engine) as session:
            row = session.get(DifyConversation, customer)
            if row is None or _aware(row.updated_at) < cutoff:
                return ""
            return row.conversation_id

    def keep(self, customer: str, conversation_id: str) -> None:
        with Session(self.engine) as session:
            row = session.get(DifyConversation, customer)
            if row is None:
                session.add(DifyConversation(customer=customer, conversation_id=conversation_id))
            else:
                row.conversation_id, row.updated_at = conversation_id, datetime.now(UTC)
            session.commit()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class DifyAppAnswerer:
    """Answers as the pipeline does (``answer(question, customer=...)``), through Dify."""

    def __init__(
        self,
        client: DifyAppClient,
        conversations: DifyConversations,
        *,
        inputs: dict[str, str],
        sensitive: SensitiveWordFilter,
        fallback_text: str,
    ) -> None:
        self.client = client
        self.conversations = conversations
        self.inputs = inputs
        self.sensitive = sensitive
        self.fallback_text = fallback_text

    def answer(self, question: str, *, customer: str | None = None) -> Answer:
        user = customer or "anonymous"
        query = mask_pii(question.strip())
        conversation = self.conversations.current(user)
        try:
            try:
                data = self.client.chat(query, user, conversation, self.inputs)
            except DifyAppRejected as exc:
                if not (exc.status == 404 and conversation):
                    raise
                log.info("Dify conversation %s is gone; starting a new one", conversation)
                data = self.client.chat(query, user, "", self.inputs)
        except DifyAppRejected as exc:
            log.error("the Dify app cannot answer (customer gets the hand-off reply): %s", exc)
            return Answer(text=self.fallback_text, refused=True, handoff=True)
        if data.get("conversation_id"):
            self.conversations.keep(user, str(data["conversation_id"]))
        text = self._clean(data["answer"])
        if not text:
            return Answer(text=self.fallback_text, refused=True, handoff=True)
        usage = (data.get("metadata") or {}).get("usage") or {}
        return Answer(
            text=text,
            sources=_sources((data.get("metadata") or {}).get("retriever_resources")),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            draft=data["answer"],
        )

    def earlier_answer(self, question: str, *, customer: str, since: datetime) -> Answer | None:
        """Dify's answer to this question if it already gave one since ``since`` (when the
        customer asked), for a retry: the worker died after Dify answered, or gave up
        waiting while Dify finished. Asking again would put the question twice into the
        customer's Dify conversation. None: ask.

        Dify stores the message when it starts answering; an empty answer younger than
        two timeouts means it is still writing, so this raises DifyAppUnavailable and the
        task comes back later."""
        after = _aware(since).timestamp() - CLOCK_SLACK_S
        try:
            conversation = self.conversations.current(customer)
            if not conversation:
                # The first question: Dify started a conversation we never heard of.
                started = self.client.latest_conversation(customer)
                if not started or float(started.get("created_at") or 0) < after:
                    return None
                conversation = str(started["id"])
                self.conversations.keep(customer, conversation)
            latest = self.client.latest_message(customer, conversation)
        except DifyAppRejected:
            return None  # answer() meets the same refusal and says why
        if not latest or latest.get("query") != mask_pii(question.strip()):
            return None
        created = float(latest.get("created_at") or 0)
        if created < after:
            return None  # the same words asked earlier, answered then
        if latest.get("answer"):
            text = self._clean(str(latest["answer"]))
            if not text:
                return Answer(text=self.fallback_text, refused=True, handoff=True)
            log.info("Dify had answered this question already; not asking again")
            sources = _sources(latest.get("retriever_resources"))
            return Answer(text=text, sources=sources, draft=str(latest["answer"]))
        writing = time.time() - created < 2 * self.client.timeout[1]
        if latest.get("status") != "error" and writing:
            raise DifyAppUnavailable("Dify is still answering this question")
        return None

    def _clean(self, raw: str) -> str:
        return mask_pii(self.sensitive(to_plain_text(strip_think(_DETAILS.sub("", raw)))))


def _sources(found: Any) -> list[dict[str, Any]]:
    """Dify's retriever resources in the shape the pipeline stores its sources in."""
    if not isinstance(found, list):
        return []
    return [
        {
            "source": str(r.get("document_name") or r.get("dataset_name") or ""),
            "section": str(r.get("dataset_name") or ""),
            "score": round(float(r.get("score") or 0.0), 4),
        }
        for r in found
        if isinstance(r, dict)
    ]
