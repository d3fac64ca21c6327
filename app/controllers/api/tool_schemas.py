"""Request and response schemas of the tool API (marshmallow).

They validate requests and, through apispec, generate /openapi.json: one definition, so
the document Dify imports cannot drift from what the endpoints accept. Request bodies are
flat (Dify turns only top-level properties into tool parameters) and use no nullable or
union types (OpenAPI 3.0, which Dify's parser handles).
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate


class _Strict(Schema):
    class Meta:
        unknown = RAISE


#: No NUL (the edge refuses it with a 400: PostgreSQL cannot store it), as a pattern that
#: the schema publishes, so a request the schema allows is one the endpoint takes.
NO_NUL = r"^[^\u0000]*$"
#: The largest id a table holds (PostgreSQL integer): a larger one is a 400, not a query.
MAX_ID = 2**31 - 1


def _text(description: str, *, max_len: int = 2000, required: bool = True, **kw) -> fields.String:
    return fields.String(
        required=required,
        validate=[
            validate.Length(min=1 if required else 0, max=max_len),
            validate.Regexp(NO_NUL, error="contains a NUL character (U+0000)"),
        ],
        metadata={"description": description},
        **kw,
    )


class SearchRequest(_Strict):
    query = _text("What to look for, in the customer's words (Chinese or English).")
    top_k = fields.Integer(
        load_default=4,
        validate=validate.Range(min=1, max=20),
        metadata={"description": "How many passages to return (1-20).", "default": 4},
    )
    category = _text(
        "Only search this category (for example 物流, 售后, 发票); empty for all.",
        max_len=256,
        required=False,
        load_default="",
    )


class Passage(Schema):
    content = fields.String(metadata={"description": "The passage text."})
    score = fields.Float(metadata={"description": "Relevance 0-1 (cosine similarity)."})
    source = fields.String(metadata={"description": "The document it comes from."})
    section = fields.String(metadata={"description": "Heading path inside the document."})
    category = fields.String()
    doc_id = fields.String()
    chunk_id = fields.String()
    faq_question = fields.String(metadata={"description": "For FAQ entries: the question."})
    faq_answer = fields.String(metadata={"description": "For FAQ entries: the stored answer."})


class SearchResponse(Schema):
    results = fields.List(fields.Nested(Passage))


class AnswerRequest(_Strict):
    question = _text("The customer's question, as they wrote it.")
    max_seconds = fields.Integer(
        load_default=40,
        validate=validate.Range(min=5, max=55),
        metadata={
            "description": "Wall-clock budget in seconds (5-55); the answer is cut short "
            "rather than late.",
            "default": 40,
        },
    )

    image_text = _text(
        "Text read from an image the customer sent (from the OCR tools), if any.",
        max_len=8000,
        required=False,
        load_default="",
    )


class Source(Schema):
    source = fields.String()
    section = fields.String()
    score = fields.Float()


class AnswerResponse(Schema):
    answer = fields.String(metadata={"description": "Plain-text answer for the customer."})
    sources = fields.List(fields.Nested(Source))
    from_faq = fields.Boolean(metadata={"description": "True when an FAQ answered verbatim."})
    truncated = fields.Boolean(metadata={"description": "True when the budget cut it short."})
    seconds = fields.Float()


class FaqRequest(_Strict):
    question = _text("The customer's question.")


class FaqResponse(Schema):
    found = fields.Boolean(metadata={"description": "True when an FAQ entry is this question."})
    question = fields.String()
    answer = fields.String(metadata={"description": "The stored answer, to send verbatim."})
    category = fields.String()
    source = fields.String()
    candidates = fields.List(fields.String(), metadata={"description": "Closest FAQ questions."})


class OcrUrlRequest(_Strict):
    image_url = _text(
        "Public http(s) URL of the image (screenshot, photo of a label or an error dialog).",
        max_len=2048,
    )


class OcrUploadRequest(_Strict):
    """One file field, ``image``; any other field is refused (additionalProperties: false),
    and so is an empty file (minLength: 1 byte)."""

    image = fields.Raw(
        required=True,
        validate=validate.Length(min=1, error="the image is empty (0 bytes); send the file"),
        metadata={
            "type": "string",
            "format": "binary",
            "description": "The image file (PNG, JPEG, WEBP, BMP, GIF or TIFF), not empty.",
        },
    )


class OcrLine(Schema):
    text = fields.String()
    score = fields.Float()


class OcrResponse(Schema):
    text = fields.String(metadata={"description": "All recognised text, one line per line."})
    lines = fields.List(fields.Nested(OcrLine))
    width = fields.Integer()
    height = fields.Integer()


class HandoffRequest(_Strict):
    reason = _text("Why a person is needed (customer asked, complaint, not in the knowledge).")
    summary = _text(
        "A short summary of the conversation for the agent.",
        max_len=4000,
        required=False,
        load_default="",
    )
    customer = _text(
        "Who the customer is (WeChat openid, Dify user id).",
        max_len=128,
        required=False,
        load_default="",
    )
    conversation_id = _text(
        "The Dify conversation id, to find the conversation again.",
        max_len=128,
        required=False,
        load_default="",
    )


class HandoffResponse(Schema):
    handoff_id = fields.Integer()
    status = fields.String()
    message = fields.String(metadata={"description": "What to tell the customer."})


class Error(Schema):
    error = fields.String(
        required=True, metadata={"description": "A stable error code (invalid_request, ...)."}
    )
    message = fields.String(
        required=True, metadata={"description": "What went wrong and how to fix it."}
    )
    # Named "fields" in the body ("fields" is taken by marshmallow's Schema itself).
    invalid_fields = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        data_key="fields",
        metadata={
            "description": "invalid_request only: each parameter that was wrong (or unknown), "
            "with what was wrong with it; '_body' for the body as a whole."
        },
    )
    entry_id = fields.Integer(
        metadata={
            "description": "addFaqEntry's conflict only: the FAQ entry that already has this "
            "question (add the wordings to it with addFaqParaphrases)."
        }
    )


# --- staff tools: what staff do with unanswered questions (app/conversations/curation.py) ---

_QUESTIONS = (
    "The customers' questions, one per line (as listUnansweredQuestions gave them): they "
    "become paraphrases of the entry, so the next customer asking any of them gets its "
    "answer verbatim."
)


class UnansweredRequest(_Strict):
    days = fields.Float(
        load_default=1.0,
        validate=validate.Range(min=0.01, max=366),
        metadata={"description": "How many days back to look (0.01-366).", "default": 1},
    )
    limit = fields.Integer(
        load_default=20,
        validate=validate.Range(min=1, max=200),
        metadata={"description": "How many groups to return, most asked first.", "default": 20},
    )


class UnansweredResponse(Schema):
    days = fields.Float()
    total_groups = fields.Integer()
    total_questions = fields.Integer()
    groups = fields.List(
        fields.Dict(),
        metadata={
            "description": "Questions the bot refused or handed off, grouped by meaning: "
            "count, examples (newest first), questions, suggestions (the nearest FAQ "
            "entries: id or doc_id + question, answer, score)."
        },
    )


class FaqEntryRequest(_Strict):
    question = _text("The entry's standard question.", max_len=200)
    answer = _text("The approved answer, sent to customers word for word.", max_len=4000)
    category = _text(
        "A category such as 物流, 售后, 发票; empty for none.",
        max_len=64,
        required=False,
        load_default="",
    )
    questions = _text(_QUESTIONS, max_len=20000, required=False, load_default="")


class ParaphrasesRequest(_Strict):
    questions = _text(_QUESTIONS, max_len=20000)
    entry_id = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_ID),
        metadata={
            "description": "The FAQ entry's id (a suggestion's id); 0 to name it by "
            "doc_id and question instead.",
            "default": 0,
        },
    )
    doc_id = _text(
        "The spreadsheet's document id (a suggestion's doc_id), when entry_id is 0.",
        max_len=128,
        required=False,
        load_default="",
    )
    question = _text(
        "The entry's question in that spreadsheet, when entry_id is 0.",
        max_len=200,
        required=False,
        load_default="",
    )


class FaqEntryResponse(Schema):
    entry = fields.Dict(
        metadata={"description": "The entry as stored: id, question, paraphrases, answer."}
    )
    index = fields.Dict(metadata={"description": "How its indexing went."})
