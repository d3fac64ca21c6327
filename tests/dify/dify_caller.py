"""How Dify reads an OpenAPI document and calls the tools in it, for the tests.

Written from Dify's ApiBasedToolSchemaParser and ApiTool (api/core/tools) and the rules in
shared/dify/CONTRACTS.md: tool URL = servers[0].url + path; only operation-level
parameters; a requestBody schema `$ref` resolved one level; each top-level property one
tool parameter; the first content type is the one sent; `format: binary` properties go as
multipart files; "Authorization: Bearer <key>" with the bearer prefix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import requests

METHODS = ("get", "post", "put", "delete", "patch", "head", "options", "trace")
OPERATION_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass
class DifyTool:
    name: str
    url: str
    method: str
    description: str
    content_type: str | None
    body_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    parameters: list[dict[str, Any]] = field(default_factory=list)


class ImportRejected(AssertionError):
    pass


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    if not ref.startswith("#/"):
        raise ImportRejected(f"non-local $ref {ref!r}")
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _walk_types(node: Any, path: str = "") -> list[str]:
    bad = []
    if isinstance(node, dict):
        if isinstance(node.get("type"), list):
            bad.append(path)
        for k, v in node.items():
            bad += _walk_types(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            bad += _walk_types(v, f"{path}/{i}")
    return bad


def parse(doc: dict[str, Any]) -> list[DifyTool]:
    """The tools Dify's importer makes of `doc`; raises ImportRejected where it would fail
    or make a tool an LLM cannot use well."""
    if not str(doc.get("openapi", "")).startswith("3.0"):
        raise ImportRejected(f"openapi {doc.get('openapi')!r}: 3.0.x is what Dify parses safely")
    if list_types := _walk_types(doc):
        raise ImportRejected(f"3.1-style list types crash Dify's parser at {list_types}")
    if "description" not in doc.get("info", {}):
        raise ImportRejected("info.description becomes the provider description")
    servers = doc.get("servers") or []
    if not servers or not re.match(r"^https?://", servers[0].get("url", "")):
        raise ImportRejected("servers[0].url must be an absolute URL")
    tools: list[DifyTool] = []
    for path, item in doc["paths"].items():
        if "parameters" in item:
            raise ImportRejected(f"{path}: path-level parameters are ignored by Dify")
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            op_id = op.get("operationId")
            if not op_id or not OPERATION_ID.match(op_id):
                raise ImportRejected(f"{method} {path}: needs an operationId like ^[a-zA-Z0-9_-]+$")
            description = op.get("description") or op.get("summary")
            if not description:
                raise ImportRejected(f"{op_id}: no description for the LLM")
            tool = DifyTool(op_id, servers[0]["url"] + path, method, description, None)
            tool.parameters = list(op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {})
            if body:
                tool.content_type = next(iter(body))
                schema = _resolve(doc, body[tool.content_type]["schema"])
                if schema.get("type") != "object":
                    raise ImportRejected(f"{op_id}: the request body must be an object")
                for name, prop in schema.get("properties", {}).items():
                    if "$ref" in prop or prop.get("type") == "object" or "anyOf" in prop:
                        raise ImportRejected(f"{op_id}.{name}: nested body; keep bodies flat")
                    if (
                        prop.get("type") == "array"
                        and prop.get("items", {}).get("type") == "object"
                    ):
                        raise ImportRejected(f"{op_id}.{name}: list of objects; keep bodies flat")
                    if not prop.get("description"):
                        raise ImportRejected(f"{op_id}.{name}: parameter without a description")
                    tool.body_properties[name] = prop
                tool.required = list(schema.get("required", []))
            tools.append(tool)
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise ImportRejected(f"duplicate operationIds: {names}")
    if len(tools) > 100:
        raise ImportRejected("more than 100 operations in one provider")
    return tools


def _convert(prop: dict[str, Any], value: Any) -> Any:
    typ = prop.get("type")
    if typ == "integer":
        return int(value)
    if typ == "number":
        return float(value) if "." in str(value) else int(value)
    if typ == "boolean":
        return bool(value)
    if typ == "string":
        return str(value)
    return value


def call(
    tool: DifyTool,
    api_key: str,
    params: dict[str, Any],
    files: dict[str, tuple[str, bytes, str]] | None = None,
) -> requests.Response:
    """Calls a tool the way Dify's ApiTool does (60 s read timeout)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    body: dict[str, Any] = {}
    multipart = []
    for name, prop in tool.body_properties.items():
        if prop.get("format") == "binary":
            if files and name in files:
                multipart.append((name, files[name]))
            elif name in tool.required:
                raise AssertionError(f"missing file parameter {name}")
        elif name in params:
            body[name] = _convert(prop, params[name])
        elif name in tool.required:
            raise AssertionError(f"Dify would refuse: missing required parameter {name}")
        elif "default" in prop:
            body[name] = prop["default"]
    data: Any = body
    if tool.content_type == "application/json":
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    return requests.request(
        tool.method,
        tool.url,
        headers=headers,
        data=data,
        files=multipart or None,
        timeout=(10, 60),
    )
