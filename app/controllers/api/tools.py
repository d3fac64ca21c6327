"""The tool API that Dify imports from /openapi.json: one POST endpoint per tool.

Every endpoint takes a flat JSON body (or the same fields form-encoded, which is what a
Dify http-request node can send safely), needs a bearer API key, and answers JSON, or
plain text when the caller asks `Accept: text/plain` (handy in workflows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import Schema, ValidationError

from app.accounts import apikeys
from app.controllers import errors as http_errors
from app.controllers.api import tool_schemas as s
from app.controllers.api.auth import check_bearer
from app.conversations import curation
from app.dify import tools
from app.errors import BadRequest, Unauthorized
from app.settings import Settings

bp = Blueprint("tools", __name__, url_prefix="/tools")
# Errors in the Error schema of /openapi.json: {"error": code, "message": ...}. Bad images
# and refused URLs (400 bad_image), the model (503 model_unavailable, 502 model_error), the
# knowledge base and the database (503) carry their status and code.
http_errors.install_tools(bp)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operation:
    """One tool: its route and everything /openapi.json says about it."""

    path: str
    operation_id: str
    summary: str
    description: str
    request: type[Schema]
    response: type[Schema]
    content_type: str
    plain: Callable[[dict[str, Any]], str]
    #: The use case: the request schema's loaded body in, the response body out (inside an
    #: app context; the MCP server at /mcp calls it too, app/controllers/api/mcp.py).
    run: Callable[[dict[str, Any]], dict[str, Any]]


OPERATIONS: list[Operation] = []


def _settings() -> Settings:
    return current_app.extensions["settings"]


@bp.before_request
def _authenticate() -> None:
    settings = _settings()
    upload = request.path.endswith("/ocr/upload")
    request.max_content_length = (
        settings.tools_max_image_bytes + 64 * 1024 if upload else settings.api_max_body_bytes
    )
    failure = check_bearer()
    if failure is not None:
        raise Unauthorized(
            failure.message,
            code=f"{failure.reason}_api_key",
            headers={"WWW-Authenticate": 'Bearer realm="wxcs"'},
        )


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> Response:
    error = BadRequest(_flatten(exc.messages), fields=_field_messages(exc.messages))
    return http_errors.respond(error, http_errors.tool)


def _field_messages(messages: Any) -> dict[str, list[str]]:
    """``{parameter: [what was wrong, ...]}``, as the Error schema declares ``fields``
    (marshmallow's messages may be a bare list, or nested for a nested value)."""
    if not isinstance(messages, dict):
        return {"_body": [_flatten(messages)]}
    return {
        str(name): [_flatten(m) for m in value] if isinstance(value, list) else [_flatten(value)]
        for name, value in messages.items()
    }


def _flatten(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in messages.items())
    if isinstance(messages, list):
        return " ".join(_flatten(m) for m in messages)
    return str(messages)


def _body(op: Operation) -> dict[str, Any]:
    if op.content_type == "multipart/form-data":
        # Every part, text or file, goes through the schema: unknown ones are refused as the
        # document says (additionalProperties: false), an empty file by its minLength.
        data = {name: request.form.getlist(name)[-1] for name in request.form}
        if "image" in data:
            raise ValidationError({"image": ["send the image as a file part, not as text"]})
        data.update({name: request.files[name].read() for name in request.files})
        if "image" not in data:
            raise ValidationError({"image": ["send the image as a multipart file field 'image'"]})
        return op.request().load(data)
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        data: Any = request.form.to_dict()
    else:
        if not request.get_data(cache=True):
            raise ValidationError({"_body": ["the request has no body; send a JSON object"]})
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationError({"_body": ["the body must be a JSON object"]})
    return op.request().load(data)


def _wants_plain() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/plain"])
    return best == "text/plain" and request.accept_mimetypes["application/json"] < 1


def tool(
    path: str,
    operation_id: str,
    *,
    summary: str,
    description: str,
    request_schema: type[Schema],
    response_schema: type[Schema],
    plain: Callable[[dict[str, Any]], str],
    content_type: str = "application/json",
) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Callable[[], Any]]:
    """Registers a tool endpoint and its OpenAPI operation."""

    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[], Any]:
        op = Operation(
            path,
            operation_id,
            summary,
            description,
            request_schema,
            response_schema,
            content_type,
            plain,
            fn,
        )
        OPERATIONS.append(op)

        def view() -> Any:
            result = op.run(_body(op))
            if _wants_plain():
                return Response(op.plain(result), mimetype="text/plain")
            return jsonify(result)

        view.__name__ = operation_id
        bp.add_url_rule(path, operation_id, view, methods=["POST"])
        return view

    return register


@tool(
    "/search",
    "searchKnowledgeBase",
    summary="Search the shop's knowledge base",
    description=(
        "Finds the passages of the shop's knowledge base (FAQ, after-sales policy, product "
        "documents) most relevant to a question, with their source and a 0-1 score. Use it "
        "to look facts up before answering; it does not write an answer."
    ),
    request_schema=s.SearchRequest,
    response_schema=s.SearchResponse,
    plain=lambda r: "\n\n".join(p["content"] for p in r["results"]),
)
def search(body: dict[str, Any]) -> dict[str, Any]:
    return {"results": tools.search(_settings(), body["query"], body["top_k"], body["category"])}


@tool(
    "/answer",
    "answerCustomerQuestion",
    summary="Answer a customer's question from the knowledge base",
    description=(
        "Writes a short, grounded, plain-text answer to a customer's question using only the "
        "shop's knowledge base, with the sources it used. When the knowledge does not cover "
        "the question the answer says so and offers a person; it never invents a policy. "
        "Takes a few seconds (an FAQ question answers at once); bounded by max_seconds."
    ),
    request_schema=s.AnswerRequest,
    response_schema=s.AnswerResponse,
    plain=lambda r: r["answer"],
)
def answer(body: dict[str, Any]) -> dict[str, Any]:
    return tools.answer(
        _settings(), body["question"], body["max_seconds"], image_text=body["image_text"]
    )


@tool(
    "/faq",
    "lookupFaq",
    summary="Look up the FAQ entry for a question",
    description=(
        "Checks whether the customer's question is one of the shop's FAQ questions (or a "
        "listed paraphrase). If found is true, answer is the approved reply to send verbatim; "
        "if false, candidates lists the closest FAQ questions. Instant, no model involved."
    ),
    request_schema=s.FaqRequest,
    response_schema=s.FaqResponse,
    plain=lambda r: r["answer"],
)
def faq(body: dict[str, Any]) -> dict[str, Any]:
    return tools.faq_lookup(_settings(), body["question"])


@tool(
    "/ocr/url",
    "ocrImageFromUrl",
    summary="Read the text in an image at a URL",
    description=(
        "Downloads an image from a public http(s) URL and returns the text in it (Chinese and "
        "English), line by line: order screenshots, parcel labels, error dialogs. Private and "
        "internal addresses are refused."
    ),
    request_schema=s.OcrUrlRequest,
    response_schema=s.OcrResponse,
    plain=lambda r: r["text"],
)
def ocr_url(body: dict[str, Any]) -> dict[str, Any]:
    return tools.ocr_url(_settings(), body["image_url"])


@tool(
    "/ocr/upload",
    "ocrImageUpload",
    summary="Read the text in an uploaded image",
    description=(
        "Returns the text in an uploaded image (Chinese and English), line by line: order "
        "screenshots, parcel labels, error dialogs."
    ),
    request_schema=s.OcrUploadRequest,
    response_schema=s.OcrResponse,
    plain=lambda r: r["text"],
    content_type="multipart/form-data",
)
def ocr_upload(body: dict[str, Any]) -> dict[str, Any]:
    return tools.ocr_bytes(_settings(), body["image"])


@tool(
    "/handoff",
    "handOffToHuman",
    summary="Hand the conversation to a human agent",
    description=(
        "Records that this conversation needs a person (the customer asked for one, a "
        "complaint, or the knowledge base cannot help) so an agent picks it up; returns the "
        "message to show the customer. Call it once per conversation."
    ),
    request_schema=s.HandoffRequest,
    response_schema=s.HandoffResponse,
    plain=lambda r: r["message"],
)
def handoff(body: dict[str, Any]) -> dict[str, Any]:
    return tools.handoff(api_key_id=g.get("api_key_id"), **body)


# --- staff tools: the unanswered questions turned into FAQ entries (also on /mcp) ---


def _key_holder() -> str:
    """Who the audit log names for a change made with this request's key."""
    return apikeys.holder_name(g.get("api_key_id"))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@tool(
    "/unanswered",
    "listUnansweredQuestions",
    summary="List the questions the bot could not answer, grouped by meaning",
    description=(
        "The questions customers asked in the last days that the bot refused or handed to a "
        "person, grouped by meaning, most asked first, each group with its count, examples "
        "and the nearest existing FAQ entries. Use it to draft FAQ entries for staff to "
        "review; it changes nothing."
    ),
    request_schema=s.UnansweredRequest,
    response_schema=s.UnansweredResponse,
    plain=lambda r: "\n".join(
        f"{g['count']}x " + " / ".join(e["text"] for e in g["examples"][:3]) for g in r["groups"]
    ),
)
def unanswered_groups(body: dict[str, Any]) -> dict[str, Any]:
    return curation.groups(_settings(), body["days"], body["limit"])


@tool(
    "/faq/entries",
    "addFaqEntry",
    summary="Add an FAQ entry (answered word for word from then on)",
    description=(
        "Adds an approved FAQ entry: its question, its answer, and the customers' own "
        "wordings (one per line) as paraphrases. It is indexed at once: the next customer "
        "asking any of them gets this answer verbatim. Only for answers a person approved."
    ),
    request_schema=s.FaqEntryRequest,
    response_schema=s.FaqEntryResponse,
    plain=lambda r: r["entry"].get("question", ""),
)
def add_faq_entry(body: dict[str, Any]) -> dict[str, Any]:
    wordings = _lines(body.pop("questions"))
    questions = curation.questions_of(wordings) if wordings else []
    return curation.new_entry({**body, "paraphrases": []}, questions, _key_holder())


@tool(
    "/faq/paraphrases",
    "addFaqParaphrases",
    summary="Add customers' wordings to an existing FAQ entry",
    description=(
        "Adds the customers' questions (one per line) as paraphrases of an existing FAQ "
        "entry, named by entry_id or by doc_id and question (from listUnansweredQuestions' "
        "suggestions). Indexed at once: the next customer asking any of them gets the "
        "entry's answer verbatim."
    ),
    request_schema=s.ParaphrasesRequest,
    response_schema=s.FaqEntryResponse,
    plain=lambda r: r["entry"].get("question", ""),
)
def add_faq_paraphrases(body: dict[str, Any]) -> dict[str, Any]:
    questions = curation.questions_of(_lines(body["questions"]))
    return curation.attach(
        questions,
        _key_holder(),
        entry_id=body["entry_id"] or None,
        doc_id=body["doc_id"],
        question=body["question"],
    )
