"""The machine clients' HTTP side (Dify and others), each behind a bearer API key
(auth.py): the tool API (tools.py, its schemas in tool_schemas.py and its OpenAPI document
in openapi.py), Dify's External Knowledge API (dify.py) and the OpenAI-compatible /v1
(openai_compat.py)."""
