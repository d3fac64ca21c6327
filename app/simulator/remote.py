"""Drives a simulator in another process through its ``/_sim/`` routes.

Mirrors the in-process inspection API, so a test reads the same whether the
simulator runs in a thread or in a container next to the service.
"""

from __future__ import annotations

import base64
from typing import Any

import requests


class RemoteSimulator:
    def __init__(self, base_url: str, *, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = session or requests.Session()

    @property
    def sent(self) -> list[dict[str, Any]]:
        return self._get("/_sim/sent")["sent"]

    @property
    def typing(self) -> list[dict[str, Any]]:
        return self._get("/_sim/typing")["typing"]

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self._get("/_sim/calls")["calls"]

    @property
    def token_requests(self) -> dict[str, int]:
        return self._get("/_sim/calls")["token_requests"]

    def wait_for_sent(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Long-polls the simulator; raises TimeoutError with what it has."""
        resp = self._http.get(
            f"{self.base_url}/_sim/wait_sent",
            params={"n": n, "timeout": timeout},
            timeout=timeout + 5,
        )
        if resp.status_code == 408:
            raise TimeoutError(resp.json()["error"])
        resp.raise_for_status()
        return resp.json()["sent"]

    def inject(
        self,
        path_suffix: str,
        errcode: int,
        times: int = 1,
        errmsg: str | None = None,
        http_status: int = 200,
        delay: float = 0,
    ) -> None:
        self._post(
            "/_sim/inject",
            {
                "path_suffix": path_suffix,
                "errcode": errcode,
                "times": times,
                "errmsg": errmsg,
                "http_status": http_status,
                "delay": delay,
            },
        )

    def add_media(
        self,
        media_id: str,
        data: bytes,
        content_type: str = "image/jpeg",
        filename: str | None = None,
    ) -> None:
        self._post(
            "/_sim/media",
            {
                "media_id": media_id,
                "data_base64": base64.b64encode(data).decode("ascii"),
                "content_type": content_type,
                "filename": filename,
            },
        )

    def issue_token(self) -> str:
        return self._post("/_sim/token")["access_token"]

    def expire_all_tokens(self) -> None:
        self._post("/_sim/expire_tokens")

    def reset(self) -> None:
        self._post("/_sim/reset")

    def _get(self, path: str) -> dict[str, Any]:
        resp = self._http.get(self.base_url + path, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = self._http.post(self.base_url + path, json=body or {}, timeout=10)
        if resp.status_code == 400:
            raise ValueError(resp.json().get("error", resp.text))
        resp.raise_for_status()
        return resp.json()
