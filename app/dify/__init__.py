"""Dify and other machine clients: what the service offers them, and Dify as an answerer.

- ``tools``: the use cases behind the tool API that Dify imports (search, FAQ, OCR,
  answer, hand-off); ``fetch``: the SSRF-safe download of an image a tool caller names;
- ``retrieval``: Dify's External Knowledge API (a retrieval request in, ``records`` out);
- ``app_backend``: customer questions answered by a Dify chat app (ANSWER_BACKEND=dify)
  instead of the built-in pipeline.

Their HTTP side is in app/controllers/ (the tool API, /dify, /v1).
"""
