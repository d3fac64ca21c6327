"""Checks a Dify DSL 0.6.0 file the way Dify would meet it, and runs its graph.

Structure and node shapes follow Dify's importer (api/services/app_dsl_service.py) and its
node entities (graphon nodes: http-request, question-classifier, if-else, answer, end,
start). `run` walks the graph like Dify's engine for the node types these files use:
http-request nodes send the request Dify's executor would build (templates rendered,
bearer auth, urlencoded or multipart bodies); the question classifier takes the class the
test names (the LLM that would choose it is Dify's).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

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
    "llm": {"text", "usage", "reasoning_content"},
    "knowledge-retrieval": {"result"},
    "template-transform": {"output"},
}
BODY_TYPES = {"none", "form-data", "x-www-form-urlencoded", "raw-text", "json", "binary"}


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
    if data["type"] == "question-classifier":
        found.append(data["query_variable_selector"])
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
        if data["type"] == "http-request":
            out += _http_problems(nid, data)
        before = ancestors(dsl, nid)
        for sel in _selectors(data):
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


# --- running ------------------------------------------------------------------------------


def render(template: str, pool: dict[tuple[str, str], Any]) -> str:
    return TEMPLATE.sub(lambda m: str(pool[tuple(m.group(1).split(".")[:2])]), template)


def _http(data: dict[str, Any], pool: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """The request Dify's http-request executor builds, sent for real."""
    url = render(data["url"], pool)
    headers = {}
    for line in render(data["headers"], pool).splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            headers[key.strip()] = value.strip()
    auth = data["authorization"]
    if auth["type"] == "api-key":
        key = render(auth["config"]["api_key"], pool)
        headers[auth["config"].get("header") or "Authorization"] = f"Bearer {key}"
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
        data=form or None,
        files=files or None,
        timeout=(timeout.get("connect", 10), timeout.get("read", 60)),
    )
    return {"body": resp.text, "status_code": resp.status_code, "headers": dict(resp.headers)}


def _condition(cond: dict[str, Any], pool: dict[tuple[str, str], Any]) -> bool:
    value = pool[tuple(cond["variable_selector"][:2])]
    op, want = cond["comparison_operator"], cond.get("value")
    if op == "not empty":
        return bool(value)
    if op == "empty":
        return not value
    if op == "=":
        return float(value) == float(want)
    if op == "is":
        return str(value) == str(want)
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
) -> tuple[dict[str, Any], list[str]]:
    """Runs the graph from start; returns (answer text or end outputs, visited node ids)."""
    pool: dict[tuple[str, str], Any] = {("env", k): v for k, v in env.items()}
    pool.update({("sys", k): v for k, v in sys.items()})
    start = next(n for n, v in dsl.nodes.items() if v["data"]["type"] == "start")
    pool.update({(start, k): v for k, v in inputs.items()})
    node_id, visited, result = start, [], {}
    while node_id:
        visited.append(node_id)
        data = dsl.nodes[node_id]["data"]
        handle = "source"
        if data["type"] == "http-request":
            for k, v in _http(data, pool).items():
                pool[(node_id, k)] = v
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
        nxt = [
            e["target"] for e in dsl.edges if e["source"] == node_id and e["sourceHandle"] == handle
        ]
        node_id = nxt[0] if nxt else ""
    return result, visited
