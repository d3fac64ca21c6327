"""Blue/green reindex on the running service: incremental, switched by alias, scheduled by
beat, and a reindex killed halfway (kill -9) leaves search answering from the old index."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from app.extensions import celery_config
from app.settings import ConfigError, cron_schedule, load_settings
from tests.knowledge.conftest import ADMIN, STAFF, KbService
from tests.knowledge.test_reindex_interrupted import kill_reindex_midway
from tests.support import run_flask, wait_until

DEADLINE = 600  # upper bound on 2 shared cores


def test_nightly_schedule_comes_from_kb_reindex_cron() -> None:
    nightly = celery_config(load_settings())["beat_schedule"]["kb-reindex"]
    assert nightly["task"] == "app.tasks.reindex_knowledge"
    assert nightly["schedule"] == cron_schedule("0 3 * * *")
    custom = celery_config(load_settings(kb_reindex_cron="30 1 * * 0"))["beat_schedule"]
    assert custom["kb-reindex"]["schedule"] == cron_schedule("30 1 * * 0")
    assert "kb-reindex" not in celery_config(load_settings(kb_reindex_cron=""))["beat_schedule"]
    with pytest.raises(ConfigError, match="KB_REINDEX_CRON: not a valid cron expression"):
        load_settings(kb_reindex_cron="61 3 * * *")


def _serving(kb: KbService) -> str:
    return kb.serving()


def _builds(kb: KbService) -> list[str]:
    prefix = f"{kb.collection}__"
    return sorted(kb.milvus(lambda c: [n for n in c.list_collections() if n.startswith(prefix)]))


def _flask(kb: KbService, *args: str) -> subprocess.CompletedProcess:
    done = run_flask(list(args), kb.env)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def _runs(session: requests.Session, kb: KbService) -> list[dict[str, Any]]:
    r = session.get(f"{kb.url}/api/knowledge/reindex")
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def _write_docs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"门店{i:02d}.md"
        path.write_text(
            f"# 第{i}号门店\n\n第{i}号门店的地址是幸福路{i}号，电话是0571-8800{i:04d}。"
            f"营业时间为每天九点到二十一点。\n\n## 停车\n\n第{i}号门店提供{i}个免费车位。\n",
            encoding="utf-8",
        )
        paths.append(path)
    return paths


@pytest.mark.slow
def test_incremental_blue_green_reindex(kb_service: KbService, tmp_path: Path) -> None:
    kb = kb_service
    staff = kb.login(*STAFF)
    docs = _write_docs(tmp_path / "shops", 3)
    assert _flask(kb, "kb", "upload", *map(str, docs), "--category", "门店").returncode == 0
    blue = _serving(kb)
    assert _builds(kb) == [blue]

    up_to_date = _flask(kb, "kb", "reindex")
    assert up_to_date.returncode == 0 and up_to_date.stdout.startswith("up_to_date: 5 documents")
    assert _serving(kb) == blue

    # Drift behind the app's back: one document's points vanish from Milvus.
    serving = kb.serving()
    kb.milvus(lambda c: c.delete(serving, filter='doc_id == "门店01.md"'))
    kb.milvus(lambda c: c.flush(serving))
    hits = staff.post(
        f"{kb.url}/api/knowledge/search",
        json={"query": "第1号门店地址", "document_id": "门店01.md"},
    ).json()["hits"]
    assert hits == []

    fixed = _flask(kb, "kb", "reindex")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "succeeded: 5 documents (4 reused, 1 rebuilt, 0 failed)" in fixed.stdout
    green = _serving(kb)
    assert green != blue and _builds(kb) == [green]  # the old collection is dropped
    hits = staff.post(
        f"{kb.url}/api/knowledge/search",
        json={"query": "第1号门店地址", "document_id": "门店01.md"},
    ).json()["hits"]
    assert hits and "幸福路1号" in hits[0]["text"]

    full = _flask(kb, "kb", "reindex", "--full")
    assert "succeeded: 5 documents (0 reused, 5 rebuilt, 0 failed)" in full.stdout

    # The same through the API and a Celery worker (what the nightly beat entry runs).
    admin = kb.login(*ADMIN)
    queued = admin.post(f"{kb.url}/api/knowledge/reindex", json={"full": False})
    assert queued.status_code == 202
    run = wait_until(
        lambda: next(
            (r for r in _runs(admin, kb) if r["trigger"] == "api" and r["finished_at"]), None
        ),
        DEADLINE,
        "the queued reindex to finish",
    )
    assert (run["status"], run["actor"], run["progress"]) == ("up_to_date", ADMIN[0], 100)
    log = admin.get(f"{kb.url}/api/knowledge/audit").json()["entries"]
    assert [e["action"] for e in log if e["action"] == "reindex"] == ["reindex", "reindex"]


@pytest.mark.slow
def test_reindex_killed_halfway_leaves_search_answering_from_the_old_index(
    kb_service: KbService, tmp_path: Path
) -> None:
    kb = kb_service
    staff = kb.login(*STAFF)
    docs = _write_docs(tmp_path / "many", 60)
    assert _flask(kb, "kb", "upload", *map(str, docs), "--replace").returncode == 0
    blue = _serving(kb)
    count_before = len(kb.milvus_rows("门店42.md"))
    assert count_before > 0

    run = kill_reindex_midway(kb.env, lambda: _runs(staff, kb), 3)

    # The half-built collection exists, but readers still get the old one, whole.
    assert _serving(kb) == blue
    assert run["collection"] in _builds(kb)
    hits = staff.post(f"{kb.url}/api/knowledge/search", json={"query": "第42号门店的电话"}).json()
    assert hits["hits"] and hits["hits"][0]["document_id"] == "门店42.md"
    assert len(kb.milvus_rows("门店42.md")) == count_before
    # Nobody finished it, and its process is gone: shown abandoned (not running) at once.
    wait_until(lambda: _runs(staff, kb)[0]["status"] == "abandoned", 15, "the run abandoned")

    # The next run cleans up; nothing changed, so the old collection simply keeps serving.
    again = _flask(kb, "kb", "reindex")
    assert again.returncode == 0, again.stderr[-2000:]
    runs = _runs(staff, kb)
    assert runs[0]["status"] == "up_to_date" and runs[1]["id"] == run["id"]
    assert runs[1]["status"] == "abandoned"
    assert _builds(kb) == [blue] and _serving(kb) == blue
    hits = staff.post(f"{kb.url}/api/knowledge/search", json={"query": "第42号门店的电话"}).json()
    assert hits["hits"][0]["document_id"] == "门店42.md"
