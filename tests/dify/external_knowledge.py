"""A client that calls an External Knowledge API the way Dify does, and reads the answer the
way Dify's retrieval does (api/services/external_knowledge_service.py and core/rag's
external retrieval, Dify 1.13-1.16; behaviour restated, no code copied).

- Registration ("Add an External Knowledge API"): a POST to ``{endpoint}/retrieval`` with
  the Authorization header and no body; only 404, 403 and 502 fail it.
- Retrieval: a POST with ``Authorization: Bearer {key}`` and JSON whose
  ``metadata_condition`` is always present (null when unused) and whose
  ``retrieval_setting.score_threshold`` is 0.0 when the threshold is switched off.
- Any status but 200 is an error shown to the user; on 200 each record becomes a document
  whose metadata (when an object) receives the record's score and title: a record with
  ``metadata: null`` keeps neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: (url, headers, json body or None) -> (HTTP status, parsed JSON body)
Post = Callable[[str, dict[str, str], Any], tuple[int, Any]]

REGISTRATION_FAILURES = {404, 403, 502}


class ExternalKnowledgeError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"external knowledge API answered {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Document:
    page_content: str
    metadata: dict[str, Any] | None


@dataclass
class DifyExternalKnowledge:
    post: Post
    endpoint: str
    api_key: str

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}

    def register(self) -> bool:
        """Dify's check of the endpoint and key: True when Dify accepts the API."""
        status, _ = self.post(self.endpoint.rstrip("/") + "/retrieval", self._headers(), None)
        return status not in REGISTRATION_FAILURES

    def request(
        self,
        knowledge_id: str,
        query: str,
        *,
        top_k: int = 4,
        score_threshold_enabled: bool = False,
        score_threshold: float = 0.5,
        metadata_condition: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        body = {
            "retrieval_setting": {
                "top_k": top_k,
                "score_threshold": score_threshold if score_threshold_enabled else 0.0,
            },
            "query": query,
            "knowledge_id": knowledge_id,
            "metadata_condition": metadata_condition,
        }
        return self.post(self.endpoint.rstrip("/") + "/retrieval", self._headers(), body)

    def retrieve(self, knowledge_id: str, query: str, **kw: Any) -> list[Document]:
        status, body = self.request(knowledge_id, query, **kw)
        if status != 200:
            raise ExternalKnowledgeError(status, body)
        documents = []
        for record in body.get("records", []):
            metadata = record.get("metadata")
            if isinstance(metadata, dict):
                metadata = {**metadata, "score": record.get("score")}
                metadata["title"] = record.get("title")
            documents.append(Document(record.get("content", ""), metadata))
        return documents
