"""Staff use the knowledge API of the running service: sign in, upload every format, watch
indexing progress, hit-test, replace, delete; bad files are refused and change nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.knowledge import files
from tests.knowledge.conftest import ADMIN, FAQ_ROWS, POLICY_MD, STAFF, KbService, faq_csv
from tests.knowledge.test_formats import BAD_FILES, RETURNS
from tests.support import run_flask, wait_until

pytestmark = pytest.mark.slow

INDEXING_DEADLINE = 300  # upper bound on 2 shared cores (OCR runs in the worker)


def _upload(
    s: requests.Session, url: str, name: str, data: bytes, **form: str
) -> requests.Response:
    return s.post(f"{url}/api/knowledge/documents", files={"file": (name, data)}, data=form)


def _doc(s: requests.Session, url: str, doc_id: str) -> dict[str, Any]:
    r = s.get(f"{url}/api/knowledge/documents/{requests.utils.quote(doc_id, safe='')}")
    assert r.status_code == 200, r.text
    return r.json()["document"]


def _wait_status(s: requests.Session, url: str, doc_id: str, *done: str) -> dict[str, Any]:
    seen: list[tuple[str, int]] = []

    def check() -> dict[str, Any] | None:
        doc = _doc(s, url, doc_id)
        seen.append((doc["status"], doc["progress"]))
        return doc if doc["status"] in done else None

    return wait_until(check, INDEXING_DEADLINE, f"{doc_id} to be {'/'.join(done)} ({seen[-3:]})")


def _search(s: requests.Session, url: str, query: str, **extra: Any) -> list[dict[str, Any]]:
    r = s.post(f"{url}/api/knowledge/search", json={"query": query, **extra})
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def test_sign_in_is_required_and_cookie_writes_need_the_csrf_token(kb_service: KbService) -> None:
    url = kb_service.url
    anonymous = requests.get(f"{url}/api/knowledge/documents")
    assert anonymous.status_code == 401 and anonymous.json() == {"error": "login required"}
    wrong = requests.post(f"{url}/api/auth/login", json={"username": STAFF[0], "password": "x"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong username or password"
    assert requests.post(f"{url}/api/auth/login", data=b"[1", timeout=10).status_code == 400

    staff = kb_service.login(*STAFF)
    me = staff.get(f"{url}/api/auth/me").json()
    assert me["user"] == {"username": STAFF[0], "role": "staff"}
    no_token = requests.Session()
    no_token.cookies.update(staff.cookies)
    forged = _upload(no_token, url, "x.txt", "文本".encode())
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["error"]
    assert staff.post(f"{url}/api/knowledge/reindex", json={}).status_code == 403
    assert staff.get(f"{url}/api/knowledge/audit").status_code == 403

    basic = requests.get(f"{url}/api/knowledge/documents", auth=ADMIN)
    assert basic.status_code == 200
    assert {d["id"] for d in basic.json()["documents"]} >= {"faq.csv"}  # from `kb ingest`
    staff.post(f"{url}/api/auth/logout")
    assert staff.get(f"{url}/api/knowledge/documents").status_code == 401


# One file per accepted format, each with a phrase only it contains.
def _every_format() -> list[tuple[str, bytes, str, str]]:
    xlsx = files.with_cached_formula_values(
        files.make_xlsx(
            [
                ["问题", "答案", "相似问题", "分类"],
                ["礼品卡怎么激活？", '="在会员中心输入"&"卡密激活"', "礼品卡用不了", "会员"],
            ]
        ),
        {"B2": "在会员中心输入卡密激活"},
    )
    pdf = files.make_pdf(["发票说明\n电子发票在确认收货后开具。", files.jpeg_bytes()])
    return [
        ("礼品卡.xlsx", xlsx, "礼品卡怎么激活", "在会员中心输入卡密激活"),
        ("常见问题.csv", faq_csv(FAQ_ROWS[:3]).encode("gbk"), "钱什么时候退回来", "1到3个工作日"),
        ("退换货.docx", files.make_docx(RETURNS), "新疆西藏退货运费", "新疆西藏"),
        ("发票.pdf", pdf, "电子发票什么时候开", "确认收货后开具"),
        ("扫描件.pdf", files.make_pdf([files.jpeg_bytes()]), "手机号码邮件地址账户", "手机号码"),
        ("配送.html", files.HTML_PAGE.encode(), "江浙沪运费多少", "江浙沪"),
        ("政策.md", POLICY_MD.replace("测试商店", "样例商店").encode(), "保修范围", "人为损坏"),
        ("通知.txt", "春节期间仓库放假，二月十日恢复发货。".encode("gbk"), "春节发货", "二月十日"),
        ("截图.png", files.png_bytes(), "网络支付区别", "网络支付"),
    ]


def test_password_guessing_is_slowed_per_username_and_address(kb_service: KbService) -> None:
    url = kb_service.url
    victim = ("kbguessed", "right-pass-123")
    done = run_flask(
        ["user", "create", victim[0], "--role", "staff"],
        {**kb_service.env, "KB_NEW_PASSWORD": victim[1]},
    )
    assert done.returncode == 0, done.stderr
    login = f"{url}/api/auth/login"
    for attempt in range(6):  # LOGIN_FREE_FAILURES (5), then 1 s to wait before a 6th
        if attempt == 5:
            time.sleep(1.1)
        wrong = requests.post(login, json={"username": victim[0], "password": f"guess{attempt}"})
        assert wrong.status_code == 401, wrong.text
    locked = requests.post(login, json={"username": victim[0], "password": victim[1]})
    assert locked.status_code == 429 and "too many failed sign-ins" in locked.json()["error"]
    assert int(locked.headers["Retry-After"]) == 2  # the wait doubles with each failure
    basic = requests.get(f"{url}/api/knowledge/documents", auth=victim)
    assert basic.status_code == 429  # scripts with HTTP Basic are locked out too
    # Another account from the same address still signs in (only the pair waits).
    assert kb_service.login(*STAFF).get(f"{url}/api/auth/me").status_code == 200


def test_every_format_is_uploaded_indexed_with_progress_and_found(kb_service: KbService) -> None:
    url = kb_service.url
    staff = kb_service.login(*STAFF)
    uploads = _every_format()
    for name, data, _query, _phrase in uploads:
        r = _upload(staff, url, name, data, category="测试")
        assert r.status_code == 202, r.text
        doc = r.json()["document"]
        assert doc["id"] == name and doc["status"] == "queued" and doc["version"] == 0

    listing = staff.get(f"{url}/api/knowledge/documents", params={"category": "测试"}).json()
    assert {d["id"] for d in listing["documents"]} == {u[0] for u in uploads}
    for name, _data, query, phrase in uploads:
        doc = _wait_status(staff, url, name, "indexed", "failed")
        assert doc["status"] == "indexed", doc
        assert doc["progress"] == 100 and doc["version"] == 1 and doc["chunk_count"] > 0
        assert doc["created_by"] == STAFF[0]
        hits = _search(staff, url, query, top_k=5, document_id=name)
        assert hits and hits[0]["document_id"] == name, (name, hits[:1])
        assert any(phrase in h["text"] for h in hits), (name, [h["text"] for h in hits])

    # Hit testing: ranked passages with scores and sources; PDF hits cite their page.
    hits = _search(staff, url, "电子发票什么时候开", top_k=3)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    invoice = next(
        h for h in _search(staff, url, "确认收货后开具发票", top_k=5) if h["source"] == "发票.pdf"
    )
    assert invoice["page"] == 1 and invoice["title"] == "发票"
    scanned = _search(staff, url, "网络支付", document_id="扫描件.pdf")[0]
    assert scanned["page"] == 1
    faq = _search(staff, url, "礼品卡怎么激活", document_id="礼品卡.xlsx")[0]
    assert faq["kind"] == "faq" and faq["answer"] == "在会员中心输入卡密激活"
    assert faq["category"] == "会员"  # the row's own category
    # Metadata filters.
    assert {h["category"] for h in _search(staff, url, "运费", category="测试", top_k=10)} == {
        "测试"
    }
    assert _search(staff, url, "运费", category="没有这个分类") == []
    bad = staff.post(f"{url}/api/knowledge/search", json={"query": "x", "top_k": 500})
    assert bad.status_code == 400 and "top_k" in bad.json()["error"]
    assert staff.post(f"{url}/api/knowledge/search", data="nope").status_code == 400


def test_bad_files_get_a_clear_4xx_and_the_index_is_untouched(kb_service: KbService) -> None:
    url = kb_service.url
    staff = kb_service.login(*STAFF)
    before = staff.get(f"{url}/api/knowledge/documents").json()["documents"]
    points_before = len(kb_service.milvus_rows("faq.csv"))
    for name, data, message in BAD_FILES:
        r = _upload(staff, url, name, data)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert message in r.json()["error"], (name, r.json())
    oversized = _upload(staff, url, "big.txt", b"a" * (int(1.2 * 1024 * 1024)))
    assert oversized.status_code == 413 and "KB_MAX_UPLOAD_BYTES" in oversized.json()["error"]
    no_file = staff.post(f"{url}/api/knowledge/documents", data={"category": "x"})
    assert no_file.status_code == 422 and "'file'" in no_file.json()["error"]
    taken = _upload(staff, url, "faq.csv", faq_csv().encode())
    assert taken.status_code == 409 and taken.json()["document_id"] == "faq.csv"

    after = staff.get(f"{url}/api/knowledge/documents").json()["documents"]
    assert after == before
    assert len(kb_service.milvus_rows("faq.csv")) == points_before
    for name, _data, _message in BAD_FILES:
        assert kb_service.milvus_rows(name) == []


def test_replace_serves_old_or_new_never_neither_and_is_audited(kb_service: KbService) -> None:
    url = kb_service.url
    staff = kb_service.login(*STAFF)
    v1 = "# 营业时间\n\n门店营业时间为每天上午九点到晚上九点。\n"
    v2 = "# 营业时间\n\n门店营业时间调整为每天上午十点到晚上十点。\n"
    assert _upload(staff, url, "营业时间.md", v1.encode()).status_code == 202
    _wait_status(staff, url, "营业时间.md", "indexed")
    old_ids = {r["id"] for r in kb_service.milvus_rows("营业时间.md")}

    found: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        session = kb_service.login(*STAFF)
        while not stop.is_set():
            hits = _search(session, url, "门店营业时间", document_id="营业时间.md")
            found.append(len(hits))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        r = staff.put(
            f"{url}/api/knowledge/documents/{requests.utils.quote('营业时间.md')}",
            files={"file": ("营业时间-新.md", v2.encode())},
        )
        assert r.status_code == 202, r.text
        doc = _wait_status(staff, url, "营业时间.md", "indexed", "failed")
        wait_until(lambda: len(found) >= 3, 60, "a few searches during and after the replace")
    finally:
        stop.set()
        thread.join(timeout=60)

    assert doc["status"] == "indexed" and doc["version"] == 2
    assert found and min(found) >= 1, "a search found neither version"
    texts = [r["text"] for r in kb_service.milvus_rows("营业时间.md")]
    assert any("上午十点" in t for t in texts) and not any("九点" in t for t in texts)
    assert not old_ids & {r["id"] for r in kb_service.milvus_rows("营业时间.md")}
    versions = _doc(staff, url, "营业时间.md")
    assert versions["created_by"] == STAFF[0] and versions["updated_by"] == STAFF[0]
    full = staff.get(f"{url}/api/knowledge/documents/{requests.utils.quote('营业时间.md')}").json()
    assert [(v["number"], v["status"]) for v in full["document"]["versions"]] == [
        (2, "indexed"),
        (1, "superseded"),
    ]
    admin = kb_service.login(*ADMIN)
    log = admin.get(f"{url}/api/knowledge/audit", params={"target": "营业时间.md"}).json()
    assert [(e["action"], e["actor"]) for e in log["entries"]] == [
        ("replace", STAFF[0]),
        ("upload", STAFF[0]),
    ]


def test_a_replacement_that_cannot_be_read_keeps_the_old_version(kb_service: KbService) -> None:
    url = kb_service.url
    staff = kb_service.login(*STAFF)
    assert _upload(staff, url, "公告.txt", "本店支持七天无理由退货。".encode()).status_code == 202
    _wait_status(staff, url, "公告.txt", "indexed")
    # A picture without any text opens fine, so it is accepted; OCR then finds nothing.
    blank = files.blank_png()
    r = staff.put(f"{url}/api/knowledge/documents/公告.txt", files={"file": ("公告.png", blank)})
    assert r.status_code == 202, r.text
    doc = _wait_status(staff, url, "公告.txt", "failed")
    assert "no text" in doc["error"] and "version 1 is still served" in doc["error"]
    assert doc["version"] == 1
    assert _search(staff, url, "七天无理由退货", document_id="公告.txt")


def test_delete_leaves_none_of_its_vectors(kb_service: KbService) -> None:
    url = kb_service.url
    staff = kb_service.login(*STAFF)
    pages = [f"第{i}章\n" + "会员积分规则说明。" * 30 for i in range(1, 4)]
    assert _upload(staff, url, "积分规则.pdf", files.make_pdf(pages)).status_code == 202
    doc = _wait_status(staff, url, "积分规则.pdf", "indexed")
    assert len(kb_service.milvus_rows("积分规则.pdf")) == doc["chunk_count"] > 1

    r = staff.delete(f"{url}/api/knowledge/documents/积分规则.pdf")
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": "积分规则.pdf", "chunks_removed": doc["chunk_count"]}
    assert kb_service.milvus_rows("积分规则.pdf") == []
    assert _search(staff, url, "会员积分规则", document_id="积分规则.pdf") == []
    gone = staff.get(f"{url}/api/knowledge/documents/积分规则.pdf")
    assert gone.status_code == 404 and "no document" in gone.json()["error"]
    assert staff.delete(f"{url}/api/knowledge/documents/积分规则.pdf").status_code == 404
    log = kb_service.login(*ADMIN).get(f"{url}/api/knowledge/audit").json()["entries"]
    assert (log[0]["action"], log[0]["actor"], log[0]["target"]) == (
        "delete",
        STAFF[0],
        "积分规则.pdf",
    )
    assert log[0]["detail"]["chunks_removed"] == doc["chunk_count"]


def test_api_keys_are_managed_by_admins_and_audited(kb_service: KbService) -> None:
    url = kb_service.url
    staff, admin = kb_service.login(*STAFF), kb_service.login(*ADMIN)
    assert staff.get(f"{url}/api/apikeys").status_code == 403
    assert admin.post(f"{url}/api/apikeys", json={"name": ""}).status_code == 400
    assert admin.post(f"{url}/api/apikeys", data=b"[").status_code == 400
    made = admin.post(f"{url}/api/apikeys", json={"name": "dify-test"})
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["api_key"]["id"]
    listed = admin.get(f"{url}/api/apikeys").json()["api_keys"]
    assert [k["name"] for k in listed if k["id"] == key_id] == ["dify-test"]
    assert all(key not in str(k) for k in listed)  # the plaintext is never listed
    bearer = {"Authorization": f"Bearer {key}"}
    ok = requests.post(f"{url}/tools/search", json={"query": "包邮"}, headers=bearer)
    assert ok.status_code == 200, ok.text
    assert admin.delete(f"{url}/api/apikeys/{key_id}").status_code == 200
    assert admin.delete(f"{url}/api/apikeys/999999").status_code == 404
    # Refused at once by the process that revoked it, by the others within API_KEY_CACHE_S.
    wait_until(
        lambda: (
            requests.post(f"{url}/tools/search", json={"query": "包邮"}, headers=bearer).status_code
            == 401
        ),
        15,
        "the revoked key refused",
    )
    log = admin.get(f"{url}/api/knowledge/audit").json()["entries"]
    actions = [(e["action"], e["actor"]) for e in log if e["target"] == f"apikey:{key_id}"]
    assert sorted(actions) == [("apikey.create", ADMIN[0]), ("apikey.revoke", ADMIN[0])]


def test_kb_ingest_takes_a_new_file_before_an_unchanged_one(
    kb_service: KbService, tmp_path: Path
) -> None:
    # Files are taken in name order: the new a.md is indexed, then the unchanged b.md is
    # recognised by its hash (5e3191a reused the hashes' name for a bool: b.md crashed it).
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "b_hours.md").write_text("# 营业时间\n门店每天9点到21点营业。\n", encoding="utf-8")
    first = run_flask(["kb", "ingest", "--dir", str(folder)], kb_service.env)
    assert first.returncode == 0, first.stdout + first.stderr
    (folder / "a_parking.md").write_text("# 停车\n顾客停车两小时免费。\n", encoding="utf-8")
    again = run_flask(["kb", "ingest", "--dir", str(folder)], kb_service.env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    lines = again.stdout.splitlines()
    assert any("a_parking.md" in line and "indexed" in line for line in lines), again.stdout
    assert any("b_hours.md" in line and "unchanged" in line for line in lines), again.stdout
