"""Checks a Dify DSL 0.6.0 file the way Dify would meet it, and runs its graph.

Structure and node shapes follow Dify's importer (api/services/app_dsl_service.py) and its
node entities (graphon nodes: http-request, question-classifier, if-else, answer, end,
start, knowledge-retrieval, llm, code). `run` walks the graph like Dify's engine for the
node types these files use:

- http-request nodes send the request Dify's executor would build (templates rendered,
  query params from the ``key: value`` lines, bearer or basic auth (``user:password``
  base64-encoded as Dify does), urlencoded or multipart bodies);
- knowledge-retrieval nodes ask each external dataset the node names, through
  tests/dify/external_knowledge.py (Dify's External Knowledge API client), and give the
  records in the shape Dify's node outputs (``result``: content, title, metadata);
- llm nodes send the rendered prompt (``{{#context#}}`` = the context variable's contents,
  one per line, as Dify's LLM node joins them) to the OpenAI-compatible model the test
  names, streaming as Dify's provider does; ``reasoning_format: separated`` keeps the
  reasoning out of ``text``;
- code nodes run their Python ``main`` with the declared variables and check its result
  against the declared outputs (types, and Dify's limit of 30 items per array);
- the question classifier takes the class the test names (the LLM that would choose it is
  Dify's).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.dify.external_knowledge import DifyExternalKnowledge

NODE_TYPES = {
    "start",
    "end",
    "answer",
    "llm",
    "knowledge-retrieval",
    "if-else",
    "code",
    "template-transform",
    "question-classifier",
    "http-request",
    "tool",
    "parameter-extractor",
    "variable-aggregator",
    "assigner",
    "iteration",
    "loop",
    "document-extractor",
    "list-operator",
    "agent",
    "human-input",
}
TEMPLATE = re.compile(r"\{\{#([a-zA-Z0-9_]{1,50}(?:\.[a-zA-Z_][a-zA-Z0-9_]{0,29}){1,10})#\}\}")
SYS_VARS = {
    "advanced-chat": {
        "query",
        "files",
        "conversation_id",
        "user_id",
        "dialogue_count",
        "app_id",
        "workflow_id",
        "workflow_run_id",
    },
    "workflow": {"files", "user_id", "app_id", "workflow_id", "workflow_run_id"},
}
OUTPUTS = {
    "http-request": {"body", "status_code", "headers", "files"},
    "question-classifier": {"class_name", "class_id", "class_label", "usage"},
    "llm": {"text", "usage", "reasoning_content", "finish_reason"},
    "knowledge-retrieval": {"result"},
    "template-transform": {"output"},
}
BODY_TYPES = {"none", "form-data", "x-www-form-urlencoded", "raw-text", "json", "binary"}
#: if-else operators (graphon's condition entities)
OPERATORS = {
    "contains",
    "not contains",
    "start with",
    "end with",
    "is",
    "is not",
    "empty",
    "not empty",
    "in",
    "not in",
    "all of",
    "=",
    "≠",
    ">",
    "<",
    "≥",
    "≤",
    "null",
    "not null",
    "exists",
    "not exists",
}
#: code node output types (SegmentType values Dify allows from code)
CODE_TYPES = {
    "string": str,
    "number": (int, float),
    "object": dict,
    "boolean": bool,
    "array[string]": list,
    "array[number]": list,
    "array[object]": list,
    "array[boolean]": list,
}
#: Dify's CODE_MAX_*_ARRAY_LENGTH defaults
CODE_MAX_ARRAY = 30
START_TYPES = {
    "text-input",
    "paragraph",
    "select",
    "number",
    "file",
    "file-list",
    "checkbox",
    "json_object",
}
PROMPT_ROLES = {"system", "user", "assistant"}
CONTEXT = "{{#context#}}"


@dataclass
class Dsl:
    path: Path
    raw: str
    doc: dict[str, Any]
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return self.doc["app"]["mode"]


def load(path: Path) -> Dsl:
    raw = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(raw)
    graph = doc["workflow"]["graph"]
    return Dsl(path, raw, doc, {n["id"]: n for n in graph["nodes"]}, graph["edges"])


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _selectors(data: dict[str, Any]) -> list[list[str]]:
    """Every variable a node reads: templates and the selector fields Dify resolves."""
    found = [m.split(".") for s in _strings(data) for m in TEMPLATE.findall(s)]
    if data["type"] in ("question-classifier", "knowledge-retrieval"):
        found.append(data["query_variable_selector"])
    if data["type"] == "llm" and (data.get("context") or {}).get("enabled"):
        found.append(data["context"].get("variable_selector") or [])
    if data["type"] == "code":
        found += [v["value_selector"] for v in data.get("variables") or []]
    for case in data.get("cases") or []:
        found += [c["variable_selector"] for c in case["conditions"]]
    for out in data.get("outputs") or []:
        if isinstance(out, dict) and "value_selector" in out:
            found.append(out["value_selector"])
    body = data.get("body") or {}
    found += [item["file"] for item in body.get("data") or [] if item.get("type") == "file"]
    return found


def ancestors(dsl: Dsl, node_id: str) -> set[str]:
    parents: dict[str, set[str]] = {}
    for e in dsl.edges:
        parents.setdefault(e["target"], set()).add(e["source"])
    seen: set[str] = set()
    todo = deque(parents.get(node_id, ()))
    while todo:
        n = todo.popleft()
        if n not in seen:
            seen.add(n)
            todo.extend(parents.get(n, ()))
    return seen


def _outputs(node: dict[str, Any]) -> set[str]:
    data = node["data"]
    if data["type"] == "start":
        return {v["variable"] for v in data.get("variables") or []}
    if data["type"] == "code":
        return set(data["outputs"])
    return OUTPUTS.get(data["type"], set())


def problems(dsl: Dsl) -> list[str]:
    """Everything that would stop the file importing into Dify or running there."""
    out: list[str] = []
    doc = dsl.doc
    if not re.search(r"^version:\s*(['\"])0\.6\.0\1\s*$", dsl.raw, re.MULTILINE):
        out.append('version must be the quoted string "0.6.0" (unquoted 0.6 is a float)')
    if doc.get("kind") != "app":
        out.append("kind must be app")
    app = doc.get("app") or {}
    for key in ("name", "mode", "icon", "icon_background", "description"):
        if not app.get(key):
            out.append(f"app.{key} missing")
    if app.get("mode") not in ("workflow", "advanced-chat"):
        out.append("app.mode must be workflow or advanced-chat")
    if doc.get("dependencies") != []:
        out.append("dependencies must be a list (empty: nothing to install)")
    wf = doc.get("workflow") or {}
    for key in ("graph", "features", "environment_variables", "conversation_variables"):
        if key not in wf:
            out.append(f"workflow.{key} missing")
    env = {}
    for var in wf.get("environment_variables") or []:
        if (
            not var.get("name")
            or var.get("value") is None
            or var.get("value_type") not in ("string", "number", "secret")
        ):
            out.append(f"environment variable {var} needs name, value and value_type")
        if var.get("value_type") == "secret" and var.get("value"):
            out.append(f"secret {var['name']} must ship empty")
        env[var.get("name")] = var
    ids = list(dsl.nodes)
    if len(set(ids)) != len(dsl.doc["workflow"]["graph"]["nodes"]):
        out.append("duplicate node ids")
    for nid, node in dsl.nodes.items():
        if not re.fullmatch(r"[a-zA-Z0-9_]{1,50}", nid):
            out.append(f"node id {nid!r}: letters, digits, _ only (variable templates use it)")
        if node.get("type") != "custom" or not isinstance(node.get("position"), dict):
            out.append(f"{nid}: needs type custom and a position")
        elif not all(isinstance(node["position"].get(k), (int, float)) for k in ("x", "y")):
            out.append(f"{nid}: position needs numeric x and y")
        data = node.get("data") or {}
        if data.get("type") not in NODE_TYPES:
            out.append(f"{nid}: unknown node type {data.get('type')!r}")
        if not data.get("title"):
            out.append(f"{nid}: title missing")
    starts = [n for n, v in dsl.nodes.items() if v["data"]["type"] == "start"]
    if len(starts) != 1:
        out.append("exactly one start node")
    terminal = "answer" if dsl.mode == "advanced-chat" else "end"
    wrong = "end" if dsl.mode == "advanced-chat" else "answer"
    if any(v["data"]["type"] == wrong for v in dsl.nodes.values()):
        out.append(f"{dsl.mode} apps finish with {terminal} nodes, not {wrong}")
    for e in dsl.edges:
        for key in ("id", "source", "sourceHandle", "target", "targetHandle"):
            if key not in e:
                out.append(f"edge {e.get('id')}: {key} missing")
        if e.get("type") != "custom":
            out.append(f"edge {e.get('id')}: type must be custom")
        src, dst = dsl.nodes.get(e["source"]), dsl.nodes.get(e["target"])
        if src is None or dst is None:
            out.append(f"edge {e['id']}: connects a node that does not exist")
            continue
        out += _handle_problems(e, src["data"])
        if e["targetHandle"] != "target":
            out.append(f"edge {e['id']}: targetHandle must be target")
    reach = {starts[0]} if starts else set()
    todo = deque(reach)
    while todo:
        n = todo.popleft()
        for e in dsl.edges:
            if e["source"] == n and e["target"] not in reach:
                reach.add(e["target"])
                todo.append(e["target"])
    for nid, node in dsl.nodes.items():
        if nid not in reach:
            out.append(f"{nid}: not reachable from start")
        if node["data"]["type"] not in ("answer", "end") and not any(
            e["source"] == nid for e in dsl.edges
        ):
            out.append(f"{nid}: a dead end (no outgoing edge)")
    for nid, node in dsl.nodes.items():
        data = node["data"]
        out += NODE_CHECKS.get(data["type"], lambda _n, _d: [])(nid, data)
        before = ancestors(dsl, nid)
        for sel in _selectors(data):
            if not sel:
                out.append(f"{nid}: an empty variable selector")
                continue
            head, var = sel[0], sel[1] if len(sel) > 1 else ""
            if head == "sys":
                ok = var in SYS_VARS[dsl.mode]
            elif head == "env":
                ok = var in env
            elif head == "conversation":
                ok = var in {v["name"] for v in wf.get("conversation_variables") or []}
            else:
                ok = head in before and var in _outputs(dsl.nodes[head])
            if not ok:
                out.append(f"{nid}: reference {'.'.join(sel)} does not resolve")
    return out


def _handle_problems(edge: dict[str, Any], src: dict[str, Any]) -> list[str]:
    handle = edge["sourceHandle"]
    if src["type"] == "question-classifier":
        allowed = {c["id"] for c in src["classes"]}
    elif src["type"] == "if-else":
        allowed = {c["case_id"] for c in src["cases"]} | {"false"}
    else:
        allowed = {"source"}
    return (
        []
        if handle in allowed
        else [f"edge {edge['id']}: sourceHandle {handle!r} not in {allowed}"]
    )


def _http_problems(nid: str, data: dict[str, Any]) -> list[str]:
    out = []
    if str(data.get("method", "")).lower() not in {"get", "post", "put", "patch", "delete", "head"}:
        out.append(f"{nid}: bad method")
    for key in ("url", "headers", "params"):
        if not isinstance(data.get(key), str):
            out.append(f"{nid}: {key} must be a string")
    auth = data.get("authorization") or {}
    if auth.get("type") not in ("no-auth", "api-key"):
        out.append(f"{nid}: authorization.type must be no-auth or api-key")
    if auth.get("type") == "api-key":
        config = auth.get("config") or {}
        if config.get("type") not in ("basic", "bearer", "custom") or not config.get("api_key"):
            out.append(f"{nid}: api-key auth needs config.type and config.api_key")
    body = data.get("body") or {"type": "none", "data": []}
    if body.get("type") not in BODY_TYPES or not isinstance(body.get("data", []), list):
        out.append(f"{nid}: body.type must be one of {sorted(BODY_TYPES)}, data a list")
    for item in body.get("data") or []:
        if item.get("type") not in ("text", "file"):
            out.append(f"{nid}: body item type must be text or file")
    return out


def _model_problems(nid: str, model: Any) -> list[str]:
    if not isinstance(model, dict) or not all(
        isinstance(model.get(k), str) and model.get(k) for k in ("provider", "name", "mode")
    ):
        return [f"{nid}: model needs provider, name and mode"]
    out = []
    if model["mode"] not in ("chat", "completion"):
        out.append(f"{nid}: model.mode must be chat or completion")
    if not isinstance(model.get("completion_params", {}), dict):
        out.append(f"{nid}: model.completion_params must be a mapping")
    return out


def _llm_problems(nid: str, data: dict[str, Any]) -> list[str]:
    out = _model_problems(nid, data.get("model"))
    prompts = data.get("prompt_template")
    if not isinstance(prompts, list) or not prompts:
        return [*out, f"{nid}: a chat model's prompt_template is a list of messages"]
    for msg in prompts:
        if msg.get("role") not in PROMPT_ROLES or not isinstance(msg.get("text"), str):
            out.append(f"{nid}: each prompt message needs role {sorted(PROMPT_ROLES)} and text")
    if not any(m.get("role") == "user" for m in prompts):
        out.append(f"{nid}: the prompt has no user message")
    context = data.get("context")
    if not isinstance(context, dict) or not isinstance(context.get("enabled"), bool):
        out.append(f"{nid}: context needs enabled (true or false)")
        context = {}
    uses_context = any(CONTEXT in str(m.get("text")) for m in prompts)
    if uses_context and not context.get("enabled"):
        out.append(f"{nid}: the prompt uses {CONTEXT} but context is not enabled")
    if context.get("enabled") and not uses_context:
        out.append(f"{nid}: context is enabled but no prompt message shows {CONTEXT}")
    if data.get("reasoning_format", "tagged") not in ("separated", "tagged"):
        out.append(f"{nid}: reasoning_format must be separated or tagged")
    if not isinstance((data.get("vision") or {"enabled": False}).get("enabled"), bool):
        out.append(f"{nid}: vision.enabled must be true or false")
    return out


def _is_uuid(value: Any) -> bool:
    try:
        return str(uuid.UUID(str(value))) == str(value).lower()
    except ValueError:
        return False


def _retrieval_problems(nid: str, data: dict[str, Any]) -> list[str]:
    out = []
    ids = data.get("dataset_ids")
    # Dify's importer keeps a plain UUID (or one it encrypted itself) and drops the rest.
    if not isinstance(ids, list) or not ids or not all(_is_uuid(i) for i in ids):
        out.append(f"{nid}: dataset_ids must be a non-empty list of dataset UUIDs")
    mode = data.get("retrieval_mode")
    if mode == "multiple":
        config = data.get("multiple_retrieval_config") or {}
        if not isinstance(config.get("top_k"), int) or config["top_k"] < 1:
            out.append(f"{nid}: multiple_retrieval_config.top_k must be a positive integer")
        if config.get("reranking_enable") and not config.get("reranking_model"):
            out.append(f"{nid}: reranking_enable needs a reranking_model")
    elif mode == "single":
        out += _model_problems(nid, (data.get("single_retrieval_config") or {}).get("model"))
    else:
        out.append(f"{nid}: retrieval_mode must be single or multiple")
    if data.get("metadata_filtering_mode", "disabled") not in ("disabled", "automatic", "manual"):
        out.append(f"{nid}: metadata_filtering_mode must be disabled, automatic or manual")
    return out


def _code_problems(nid: str, data: dict[str, Any]) -> list[str]:
    out = []
    if data.get("code_language") != "python3":
        return [f"{nid}: these files' code nodes are python3"]
    try:
        compile(data.get("code", ""), f"<{nid}>", "exec")
    except SyntaxError as exc:
        return [f"{nid}: the code does not compile: {exc}"]
    names = [v.get("variable") for v in data.get("variables") or []]
    match = re.search(r"^def main\(([^)]*)\)", data["code"], re.MULTILINE)
    if not match:
        out.append(f"{nid}: the code defines no main()")
    else:
        params = [a.split(":")[0].split("=")[0].strip() for a in match.group(1).split(",")]
        if sorted(p for p in params if p) != sorted(names):
            out.append(f"{nid}: main()'s parameters {params} are not the variables {names}")
    outputs = data.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        out.append(f"{nid}: outputs must map each output to its type")
    else:
        for name, spec in outputs.items():
            if (spec or {}).get("type") not in CODE_TYPES:
                out.append(f"{nid}: output {name} has no code output type")
    return out


def _if_else_problems(nid: str, data: dict[str, Any]) -> list[str]:
    out = []
    cases = data.get("cases") or []
    if not cases:
        out.append(f"{nid}: no cases")
    ids = [c.get("case_id") for c in cases]
    if len(set(ids)) != len(ids) or "false" in ids:
        out.append(f"{nid}: case ids must be unique and not 'false' (the else branch)")
    for case in cases:
        if case.get("logical_operator") not in ("and", "or") or not case.get("conditions"):
            out.append(f"{nid}: case {case.get('case_id')} needs logical_operator and conditions")
        for cond in case.get("conditions") or []:
            if cond.get("comparison_operator") not in OPERATORS:
                out.append(f"{nid}: unknown operator {cond.get('comparison_operator')!r}")
    return out


def _start_problems(nid: str, data: dict[str, Any]) -> list[str]:
    out = []
    for var in data.get("variables") or []:
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]{0,29}", str(var.get("variable"))):
            out.append(f"{nid}: input name {var.get('variable')!r} is not a variable name")
        if var.get("type") not in START_TYPES or not var.get("label"):
            out.append(f"{nid}: input {var.get('variable')} needs a label and a type")
    return out


def _end_problems(nid: str, data: dict[str, Any]) -> list[str]:
    outputs = data.get("outputs")
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and o.get("variable") and o.get("value_selector") for o in outputs
    ):
        return [f"{nid}: outputs must be a list of variable and value_selector"]
    names = [o["variable"] for o in outputs]
    return [] if len(set(names)) == len(names) else [f"{nid}: duplicate output names"]


def _answer_problems(nid: str, data: dict[str, Any]) -> list[str]:
    answer = data.get("answer")
    return [] if isinstance(answer, str) and answer.strip() else [f"{nid}: empty answer"]


NODE_CHECKS = {
    "http-request": _http_problems,
    "llm": _llm_problems,
    "knowledge-retrieval": _retrieval_problems,
    "code": _code_problems,
    "if-else": _if_else_problems,
    "start": _start_problems,
    "end": _end_problems,
    "answer": _answer_problems,
}


# --- running ------------------------------------------------------------------------------


@dataclass
class ExternalDataset:
    """A knowledge base connected to an External Knowledge API, as its Dify settings hold it."""

    endpoint: str
    api_key: str
    knowledge_id: str
    name: str = "wxcs"
    top_k: int = 4
    score_threshold_enabled: bool = False
    score_threshold: float = 0.5


@dataclass
class Model:
    """The OpenAI-API-compatible provider's credentials in Dify (base URL ending in /v1)."""

    base_url: str
    api_key: str
    max_tokens: int | None = None  # a cap for tests on a small CPU model


def _text(value: Any) -> str:
    """A variable as Dify renders it into a template: arrays and objects as JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render(template: str, pool: dict[tuple[str, str], Any]) -> str:
    return TEMPLATE.sub(lambda m: _text(pool[tuple(m.group(1).split(".")[:2])]), template)


def _lines(text: str) -> list[tuple[str, str]]:
    """Dify's ``key: value`` lines (headers, params)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            out.append((key.strip(), value.strip()))
    return out


def _http(data: dict[str, Any], pool: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """The request Dify's http-request executor builds, sent for real."""
    url = render(data["url"], pool)
    headers = dict(_lines(render(data["headers"], pool)))
    params = _lines(render(data.get("params") or "", pool))
    auth = data["authorization"]
    if auth["type"] == "api-key":
        config = auth["config"]
        key = render(config["api_key"], pool)
        header = config.get("header") or "Authorization"
        if config["type"] == "bearer":
            headers[header] = f"Bearer {key}"
        elif config["type"] == "basic":
            # Dify base64-encodes "user:password" itself; anything else goes as typed.
            if ":" in key:
                key = base64.b64encode(key.encode()).decode()
            headers[header] = f"Basic {key}"
        else:
            headers[header] = key
    body = data.get("body") or {"type": "none", "data": []}
    form = {
        render(i["key"], pool): render(i["value"], pool)
        for i in body["data"]
        if i["type"] == "text"
    }
    files = [
        (render(i["key"], pool), pool[tuple(i["file"][:2])])
        for i in body["data"]
        if i["type"] == "file"
    ]
    timeout = data.get("timeout") or {}
    resp = requests.request(
        data["method"].upper(),
        url,
        headers=headers,
        params=params or None,
        data=form or None,
        files=files or None,
        timeout=(timeout.get("connect", 10), timeout.get("read", 60)),
    )
    return {"body": resp.text, "status_code": resp.status_code, "headers": dict(resp.headers)}


def _retrieve(
    data: dict[str, Any], pool: dict[tuple[str, str], Any], datasets: dict[str, ExternalDataset]
) -> dict[str, Any]:
    """A knowledge-retrieval node over external datasets: each dataset Dify has (others are
    skipped, as Dify skips ids it does not find) asked with its own settings."""
    query = str(pool[tuple(data["query_variable_selector"][:2])])
    found = []
    for dataset_id in data["dataset_ids"]:
        ds = datasets.get(dataset_id)
        if ds is None or not query:
            continue
        client = DifyExternalKnowledge(_post, ds.endpoint, ds.api_key)
        for doc in client.retrieve(
            ds.knowledge_id,
            query,
            top_k=ds.top_k,
            score_threshold_enabled=ds.score_threshold_enabled,
            score_threshold=ds.score_threshold,
        ):
            meta = doc.metadata or {}
            found.append(
                {
                    "metadata": {
                        "_source": "knowledge",
                        "dataset_id": dataset_id,
                        "dataset_name": ds.name,
                        "document_name": meta.get("title"),
                        "data_source_type": "external",
                        "retriever_from": "workflow",
                        "score": meta.get("score"),
                        "doc_metadata": meta,
                    },
                    "title": meta.get("title"),
                    "content": doc.page_content,
                }
            )
    found.sort(key=lambda r: r["metadata"]["score"] or 0.0, reverse=True)
    top_k = (data.get("multiple_retrieval_config") or {}).get("top_k") or len(found)
    return {"result": found[:top_k]}


def _post(url: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
    resp = requests.post(url, headers=headers, json=body, timeout=(5, 30))
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, resp.text


def _context(value: Any) -> str:
    """The text Dify's LLM node puts for {{#context#}}: each item's content on its line."""
    if isinstance(value, str):
        return value
    parts = []
    for item in value or []:
        if isinstance(item, str):
            parts.append(item)
        else:
            assert "content" in item, f"Dify refuses a context item without content: {item}"
            parts.append(item["content"])
    return "".join(p + "\n" for p in parts)


THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


def _llm(data: dict[str, Any], pool: dict[tuple[str, str], Any], model: Model) -> dict[str, Any]:
    """The chat completion Dify's OpenAI-API-compatible provider sends for an LLM node."""
    assert data["model"]["mode"] == "chat"
    context = ""
    if data["context"]["enabled"]:
        context = _context(pool[tuple(data["context"]["variable_selector"][:2])])
    messages = [
        {"role": m["role"], "content": render(m["text"].replace(CONTEXT, context), pool)}
        for m in data["prompt_template"]
    ]
    params = dict(data["model"].get("completion_params") or {})
    if model.max_tokens:
        params["max_tokens"] = min(params.get("max_tokens", model.max_tokens), model.max_tokens)
    resp = requests.post(
        model.base_url.rstrip("/") + "/chat/completions",
        headers={"Authorization": f"Bearer {model.api_key}"},
        json={
            "model": data["model"]["name"],
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **params,
        },
        stream=True,
        timeout=(10, 300),
    )
    assert resp.status_code == 200, resp.text
    content, reasoning, usage, finish = "", "", {}, None
    for line in resp.iter_lines(decode_unicode=True):
        if not line or not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        chunk = json.loads(payload)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
            finish = choice.get("finish_reason") or finish
    if data.get("reasoning_format", "tagged") == "separated":
        reasoning += "".join(THINK.findall(content))
        text = THINK.sub("", content)
    else:
        text = f"<think>\n{reasoning}\n</think>\n{content}" if reasoning else content
    return {
        "text": text,
        "reasoning_content": reasoning,
        "usage": usage,
        "finish_reason": finish,
        "messages": messages,  # not a Dify output: what was asked, for the tests to read
    }


def _check_output(nid: str, name: str, kind: str, value: Any) -> None:
    ok = isinstance(value, CODE_TYPES[kind]) and not (kind == "number" and isinstance(value, bool))
    assert ok, f"{nid}: output {name} is {type(value).__name__}, declared {kind}"
    if kind.startswith("array["):
        assert len(value) <= CODE_MAX_ARRAY, f"{nid}: {name} has over {CODE_MAX_ARRAY} items"
        item = {"string": str, "number": (int, float), "object": dict, "boolean": bool}
        want = item[kind[6:-1]]
        assert all(isinstance(v, want) for v in value), f"{nid}: {name} items are not {kind}"


def run_code(nid: str, data: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """A python3 code node: ``main(**inputs)``, its result checked as Dify checks it."""
    namespace: dict[str, Any] = {"__name__": f"dify_code_{nid}"}
    exec(compile(data["code"], f"<{nid}>", "exec"), namespace)  # noqa: S102 - the DSL's code
    result = namespace["main"](**inputs)
    assert isinstance(result, dict), f"{nid}: main() must return a dict"
    for name, spec in data["outputs"].items():
        assert name in result, f"{nid}: output {name} is missing"
        _check_output(nid, name, spec["type"], result[name])
    return {name: result[name] for name in data["outputs"]}


def _number(value: Any) -> float:
    return float(value)


def _condition(cond: dict[str, Any], pool: dict[tuple[str, str], Any]) -> bool:
    value = pool[tuple(cond["variable_selector"][:2])]
    op, want = cond["comparison_operator"], cond.get("value")
    if op == "not empty":
        return bool(value)
    if op == "empty":
        return not value
    if op == "=":
        return _number(value) == _number(want)
    if op == "≠":
        return _number(value) != _number(want)
    if op == ">":
        return _number(value) > _number(want)
    if op == "<":
        return _number(value) < _number(want)
    if op == "≥":
        return _number(value) >= _number(want)
    if op == "≤":
        return _number(value) <= _number(want)
    if op == "is":
        return str(value) == str(want)
    if op == "is not":
        return str(value) != str(want)
    if op == "contains":
        return str(want) in str(value)
    raise NotImplementedError(op)


def run(
    dsl: Dsl,
    *,
    env: dict[str, str],
    sys: dict[str, Any],
    inputs: dict[str, Any],
    choose_class: str | None = None,
    model: Model | None = None,
    datasets: dict[str, ExternalDataset] | None = None,
    outputs: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Runs the graph from start; returns (answer text or end outputs, visited node ids).
    Every node's outputs land in ``outputs`` (by node id) when a dict is given."""
    pool: dict[tuple[str, str], Any] = {("env", k): v for k, v in env.items()}
    pool.update({("sys", k): v for k, v in sys.items()})
    start = next(n for n, v in dsl.nodes.items() if v["data"]["type"] == "start")
    pool.update({(start, k): v for k, v in inputs.items()})
    node_id, visited, result = start, [], {}
    while node_id:
        visited.append(node_id)
        data = dsl.nodes[node_id]["data"]
        handle = "source"
        produced: dict[str, Any] = {}
        if data["type"] == "http-request":
            produced = _http(data, pool)
        elif data["type"] == "knowledge-retrieval":
            produced = _retrieve(data, pool, datasets or {})
        elif data["type"] == "llm":
            assert model is not None, f"{node_id}: an llm node needs the test's model"
            produced = _llm(data, pool, model)
        elif data["type"] == "code":
            args = {v["variable"]: pool[tuple(v["value_selector"][:2])] for v in data["variables"]}
            produced = run_code(node_id, data, args)
        elif data["type"] == "question-classifier":
            assert choose_class in {c["id"] for c in data["classes"]}
            handle = choose_class
        elif data["type"] == "if-else":
            handle = "false"
            for case in data["cases"]:
                combine = all if case["logical_operator"] == "and" else any
                if combine(_condition(c, pool) for c in case["conditions"]):
                    handle = case["case_id"]
                    break
        elif data["type"] == "answer":
            result["answer"] = render(data["answer"], pool)
        elif data["type"] == "end":
            result.update(
                {o["variable"]: pool[tuple(o["value_selector"][:2])] for o in data["outputs"]}
            )
        for k, v in produced.items():
            pool[(node_id, k)] = v
        if outputs is not None:
            outputs[node_id] = produced
        nxt = [
            e["target"] for e in dsl.edges if e["source"] == node_id and e["sourceHandle"] == handle
        ]
        node_id = nxt[0] if nxt else ""
    return result, visited
