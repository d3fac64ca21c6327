"""The admin page in a real headless browser (Debian's chromium via chromedriver) against
the running service (gunicorn, a Celery worker on Redis, PostgreSQL, milvus-lite): sign-in,
drag-and-drop upload with progress through to indexed, hit testing, replace, delete, the
API's error messages, reindex and the audit log, and no page without sign-in."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.knowledge import files
from tests.knowledge.conftest import ADMIN, STAFF, KbService
from tests.support import wait_until

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="browser tests need Debian's chromium and chromedriver: "
        "apt-get install chromium chromium-driver",
    ),
]

INDEXING_DEADLINE = 300  # upper bound on 2 shared cores
UI_DEADLINE = 30
SEARCH_DEADLINE = 180


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # The machine has no internet: keep chromium from trying (and stalling on) it.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--lang=zh-CN",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(log)), options=options)
    yield driver
    driver.quit()


@pytest.fixture()
def page(browser: WebDriver, kb_service: KbService) -> Iterator[WebDriver]:
    """The browser, signed out, with no script errors allowed on any page the test opens."""
    browser.get(kb_service.url + "/admin/login")
    browser.delete_all_cookies()
    browser.get_log("browser")  # drop what earlier tests left
    yield browser
    errors = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]
    assert not errors, f"script errors on the page: {errors}"


def wait(driver: WebDriver, timeout: float = UI_DEADLINE) -> WebDriverWait:
    # A list drawn again between finding a row and reading it is retried, not a failure.
    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.2,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )


def css(driver: WebDriver | WebElement, selector: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, selector)


def visible(driver: WebDriver, selector: str, timeout: float = UI_DEADLINE) -> WebElement:
    return wait(driver, timeout).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, selector)), f"{selector} to show"
    )


def sign_in(driver: WebDriver, url: str, user: tuple[str, str], path: str = "/admin/") -> None:
    driver.get(url + path)
    wait(driver).until(ec.url_contains("/admin/login"), "the login page")
    css(driver, "#username").send_keys(user[0])
    css(driver, "#password").send_keys(user[1])
    css(driver, "#login-submit").click()
    wait(driver).until(lambda d: "/admin/login" not in d.current_url, "login to go through")
    visible(driver, "#current-user")


def doc_row(driver: WebDriver, doc_id: str) -> WebElement | None:
    rows = driver.find_elements(By.CSS_SELECTOR, f'#documents tbody tr[data-id="{doc_id}"]')
    return rows[0] if rows else None


def wait_row_status(driver: WebDriver, doc_id: str, status: str) -> WebElement:
    def check(d: WebDriver) -> WebElement | None:
        row = doc_row(d, doc_id)
        return row if row is not None and row.get_attribute("data-status") == status else None

    return wait(driver, INDEXING_DEADLINE).until(check, f"{doc_id} listed as {status}")


# Records every state the upload items pass through, to check the progress shown.
WATCH_UPLOADS = """
window.uploadStates = [];
new MutationObserver(() => {
  for (const item of document.querySelectorAll('#uploads .upload')) {
    const now = item.dataset.state + ':' + item.querySelector('.bar').getAttribute('aria-valuenow');
    if (window.uploadStates[window.uploadStates.length - 1] !== now) window.uploadStates.push(now);
  }
}).observe(document.querySelector('#uploads'),
           {subtree: true, childList: true, attributes: true, characterData: true});
"""

# A user's drop: the files come from disk through a file input, then drag events carry them.
DROP = """
const [zone, source] = arguments;
const data = new DataTransfer();
for (const file of source.files) data.items.add(file);
for (const type of ['dragenter', 'dragover', 'drop']) {
  zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: data}));
}
source.remove();
"""


def drop_files(driver: WebDriver, paths: list[Path]) -> None:
    source = driver.execute_script(
        "const i = document.createElement('input'); i.type = 'file'; i.multiple = true;"
        "i.style.display = 'none'; document.body.append(i); return i;"
    )
    source.send_keys("\n".join(str(p) for p in paths))
    driver.execute_script(DROP, css(driver, "#dropzone"), source)


def upload_item(driver: WebDriver, name: str, *, done: bool = True) -> WebElement:
    """The upload item of ``name`` (the newest), once it has finished (done or failed)."""

    def check(d: WebDriver) -> WebElement | None:
        items = d.find_elements(By.CSS_SELECTOR, f'#uploads .upload[data-name="{name}"]')
        if items and items[0].get_attribute("data-state") in ("done", "failed"):
            return items[0]
        return None

    item = wait(driver, INDEXING_DEADLINE).until(check, f"the upload of {name} to finish")
    if done:
        assert item.get_attribute("data-state") == "done", item.text
    return item


def hit_test(driver: WebDriver, query: str, document: str = "", category: str = "") -> list:
    if "/admin/search" not in driver.current_url:
        css(driver, 'nav a[href="/admin/search"]').click()
    visible(driver, "#query").clear()
    css(driver, "#query").send_keys(query)
    if document:
        Select(css(driver, "#document")).select_by_value(document)
    if category:
        Select(css(driver, "#category")).select_by_value(category)
    driver.execute_script("document.querySelector('#search-summary').hidden = true")
    css(driver, "#search-submit").click()
    # The first search of a web process loads the embedding model: slow on loaded cores.
    answered = wait(driver, SEARCH_DEADLINE).until(
        lambda d: [
            e
            for e in d.find_elements(By.CSS_SELECTOR, "#search-summary, #search-error")
            if e.is_displayed()
        ],
        "the hit test to answer",
    )
    assert answered[0].get_attribute("id") == "search-summary", answered[0].text
    return driver.find_elements(By.CSS_SELECTOR, "#hits .hit")


def test_no_page_and_no_data_without_signing_in(page: WebDriver, kb_service: KbService) -> None:
    url = kb_service.url
    for path in ("/admin/", "/admin/documents", "/admin/search", "/admin/reindex", "/admin/audit"):
        r = requests.get(url + path, allow_redirects=False, timeout=10)
        assert r.status_code == 302 and "/admin/login" in r.headers["Location"], (path, r)
        page.get(url + path)
        wait(page).until(ec.url_contains("/admin/login"), f"{path} to redirect to login")
        visible(page, "#login-form")
        assert "faq.csv" not in page.page_source  # the ingested document is nowhere
        assert not page.find_elements(By.CSS_SELECTOR, "#current-user")
    # Another site cannot be the destination after login.
    page.get(url + "/admin/login?next=https://evil.example/admin/")
    assert css(page, "#login-form").get_attribute("data-next") == "/admin/documents"


def test_wrong_password_shows_an_error_and_the_right_one_gets_in(
    page: WebDriver, kb_service: KbService
) -> None:
    url = kb_service.url
    page.get(url + "/admin/search")
    wait(page).until(ec.url_contains("/admin/login"), "the login page")
    css(page, "#username").send_keys(STAFF[0])
    css(page, "#password").send_keys("not-the-password")
    css(page, "#login-submit").click()
    assert "用户名或密码错误" in visible(page, "#login-error").text
    assert "/admin/login" in page.current_url and not page.get_cookies()

    css(page, "#password").clear()
    css(page, "#password").send_keys(STAFF[1])
    css(page, "#login-submit").click()
    wait(page).until(ec.url_contains("/admin/search"), "the page asked for before login")
    assert visible(page, "#current-user").text == f"{STAFF[0]}（员工）"
    # Staff see no audit log; the page says why.
    assert not page.find_elements(By.CSS_SELECTOR, 'nav a[href="/admin/audit"]')
    page.get(url + "/admin/audit")
    assert "需要管理员账号" in visible(page, "h1").text
    assert not page.find_elements(By.CSS_SELECTOR, "#audit")

    css(page, "#logout").click()
    wait(page).until(ec.url_contains("/admin/login"), "the login page after logout")
    page.get(url + "/admin/documents")
    wait(page).until(ec.url_contains("/admin/login"), "signed out for good")


def test_drop_upload_progress_hit_testing_and_delete(
    page: WebDriver, kb_service: KbService, tmp_path: Path
) -> None:
    url = kb_service.url
    name = "门店自提.md"
    phrase = "凭取货码到杭州西湖店服务台自提"
    doc = tmp_path / name
    doc.write_text(f"# 门店自提\n\n下单时选择门店自提，{phrase}，包裹保留七天。\n", "utf-8")
    sign_in(page, url, STAFF)
    assert "/admin/documents" in page.current_url
    visible(page, '#documents tbody tr[data-id="faq.csv"]')  # the ingested knowledge

    page.execute_script(WATCH_UPLOADS)
    drop_files(page, [doc])
    item = upload_item(page, name)
    assert "完成" in item.text and "个片段已可检索" in item.text
    states = page.execute_script("return window.uploadStates")
    assert "uploading:100" in states, states
    phases = [s.split(":")[0] for s in states]
    assert phases.index("uploading") < phases.index("indexing") < phases.index("done"), states
    assert states[-1] == "done:100", states

    row = wait_row_status(page, name, "indexed")
    assert "已索引" in row.text and "v1" in row.text and STAFF[0] in row.text

    # Hit testing: the passage, ranked, with its score and source; the document filter.
    hits = hit_test(page, "可以到门店自提吗", document=name)
    assert hits, css(page, "#search-summary").text
    first = hits[0]
    assert first.get_attribute("data-rank") == "1"
    assert first.get_attribute("data-document") == name
    assert phrase in css(first, ".text").text
    assert re.fullmatch(r"得分 \d+\.\d{4}", css(first, ".score").text)
    assert f"来源：{name}" in css(first, ".source").text
    everywhere = hit_test(page, "门店自提 取货码", document="")
    assert name in [h.get_attribute("data-document") for h in everywhere]

    # Delete asks first; cancel keeps the document.
    css(page, 'nav a[href="/admin/documents"]').click()
    row = wait_row_status(page, name, "indexed")
    css(row, "button.delete").click()
    assert name in visible(page, "#confirm-delete").text
    css(page, "#delete-cancel").click()
    wait(page).until(ec.invisibility_of_element_located((By.ID, "confirm-delete")), "dialog")
    assert doc_row(page, name) is not None
    css(wait_row_status(page, name, "indexed"), "button.delete").click()
    visible(page, "#confirm-delete")
    css(page, "#delete-confirm").click()
    wait(page).until(lambda d: doc_row(d, name) is None, "the row to disappear")
    assert f"已删除 {name}" in visible(page, "#list-notice").text
    assert kb_service.milvus_rows(name) == []

    # Gone from search, and from the document filter.
    hits = hit_test(page, "门店自提 取货码")
    assert name not in [h.get_attribute("data-document") for h in hits]
    options = [o.get_attribute("value") for o in Select(css(page, "#document")).options]
    assert name not in options and "faq.csv" in options


def test_file_picker_upload_then_replace_serves_the_new_version(
    page: WebDriver, kb_service: KbService, tmp_path: Path
) -> None:
    url = kb_service.url
    name = "营业时间说明.txt"
    v1 = tmp_path / name
    v1.write_text("门店营业时间为每天早上八点到晚上八点。", "utf-8")
    v2 = tmp_path / "营业时间说明-新.txt"
    v2.write_text("门店营业时间调整为每天上午十点到晚上十点半。", "utf-8")
    sign_in(page, url, STAFF)
    css(page, "#upload-category").send_keys("门店")
    css(page, "#file-input").send_keys(str(v1))
    upload_item(page, name)
    row = wait_row_status(page, name, "indexed")
    assert "门店" in row.text

    css(row, "button.replace").click()
    css(page, "#replace-input").send_keys(str(v2))
    item = upload_item(page, v2.name)
    assert f"替换 {name}" in item.text
    row = wait_row_status(page, name, "indexed")
    assert "v2" in row.text

    hits = hit_test(page, "门店营业时间", category="门店")
    assert hits and all(h.get_attribute("data-document") == name for h in hits)
    texts = " ".join(css(h, ".text").text for h in hits)
    assert "晚上十点半" in texts and "八点" not in texts


def test_bad_files_show_the_api_message_and_nothing_is_added(
    page: WebDriver, kb_service: KbService, tmp_path: Path
) -> None:
    url = kb_service.url
    bad = {
        "无答案.csv": ("question,similar_questions\n包邮吗,运费\n".encode(), "answer"),
        "发票.pdf": (files.WINDOWS_EXECUTABLE, "not a real .pdf file"),
        "大文件.txt": (b"a" * (1024 * 1024 + 1), "文件太大"),
        "工具.exe": (files.WINDOWS_EXECUTABLE, "不支持的文件类型"),
        "faq.csv": ("question,answer\n新问题,新答案\n".encode(), "同名文档已存在"),
    }
    paths = []
    for name, (data, _message) in bad.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    sign_in(page, url, STAFF)
    before = requests.get(f"{url}/api/knowledge/documents", auth=ADMIN, timeout=10).json()

    css(page, "#file-input").send_keys("\n".join(str(p) for p in paths))
    for name, (_data, message) in bad.items():
        item = upload_item(page, name, done=False)
        assert item.get_attribute("data-state") == "failed"
        error = css(item, ".message").text
        assert message in error, (name, error)
    missing = css(page, '#uploads .upload[data-name="无答案.csv"] .message').text
    assert missing.startswith("文件无法使用：") and "missing required column(s) answer" in missing

    after = requests.get(f"{url}/api/knowledge/documents", auth=ADMIN, timeout=10).json()
    assert after == before
    for name in ("无答案.csv", "发票.pdf", "大文件.txt", "工具.exe"):
        assert doc_row(page, name) is None


def test_reindex_progress_and_audit_log_for_admins(page: WebDriver, kb_service: KbService) -> None:
    url = kb_service.url
    sign_in(page, url, STAFF, "/admin/reindex")
    assert "需要管理员账号" in visible(page, ".notice").text
    assert not page.find_elements(By.CSS_SELECTOR, "#reindex-start")
    css(page, "#logout").click()
    wait(page).until(ec.url_contains("/admin/login"), "signed out")

    sign_in(page, url, ADMIN, "/admin/reindex")
    before = {r.get_attribute("data-id") for r in page.find_elements(By.CSS_SELECTOR, "#runs tr")}
    css(page, "#reindex-start").click()

    def finished_run(d: WebDriver) -> WebElement | None:
        for run in d.find_elements(By.CSS_SELECTOR, "#runs tbody tr"):
            if run.get_attribute("data-id") not in before and run.get_attribute(
                "data-status"
            ) not in ("running", None):
                return run
        return None

    run = wait(page, INDEXING_DEADLINE).until(finished_run, "the reindex run to finish")
    assert run.get_attribute("data-status") in ("succeeded", "up_to_date"), run.text
    assert "网页/接口" in run.text and ADMIN[0] in run.text
    bar = css(run, ".bar")
    assert bar.get_attribute("aria-valuenow") == "100"
    with pytest.raises(NoSuchElementException):
        css(page, "#reindex-error:not([hidden])")

    css(page, 'nav a[href="/admin/audit"]').click()
    visible(page, "#audit")
    box = css(page, 'input[name="target"]')
    box.send_keys(STAFF[0])
    box.submit()
    wait(page).until(ec.url_contains("target="), "the filtered audit log")
    rows = page.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    assert [r.get_attribute("data-action") for r in rows] == ["user.create"]
    assert "创建用户" in rows[0].text and STAFF[0] in rows[0].text


def test_admin_creates_a_key_for_dify_sees_it_once_and_revokes_it(
    page: WebDriver, kb_service: KbService
) -> None:
    url = kb_service.url
    sign_in(page, url, STAFF, "/admin/keys")
    assert "需要管理员账号" in visible(page, "h1").text
    assert not page.find_elements(By.CSS_SELECTOR, "#key-create")
    css(page, "#logout").click()
    wait(page).until(ec.url_contains("/admin/login"), "signed out")

    sign_in(page, url, ADMIN, "/admin/keys")
    css(page, "#key-name").send_keys("dify-生产")
    css(page, "#key-create").click()
    key = visible(page, "#key-plaintext").text
    assert key.startswith("wxcs_")

    def listed(d: WebDriver) -> tuple[str, str] | None:
        for r in d.find_elements(By.CSS_SELECTOR, "#keys tbody tr"):
            if "dify-生产" in r.text and r.get_attribute("data-status") == "active":
                return r.get_attribute("data-id"), r.text
        return None

    # The list is drawn again after the create: rows are found afresh, never kept.
    key_id, row_text = wait(page).until(listed, "the new key in the list")
    assert key[:12] in row_text and key not in row_text  # listed by prefix, never whole
    search = {"query": "退款多久到账", "top_k": 1}
    bearer = {"Authorization": f"Bearer {key}"}
    assert requests.post(f"{url}/tools/search", json=search, headers=bearer).status_code == 200

    wait(page).until(
        lambda d: css(d, f'#keys tr[data-id="{key_id}"] button.danger'), "the revoke button"
    ).click()
    page.switch_to.alert.accept()
    wait(page).until(
        lambda d: css(d, f'#keys tr[data-id="{key_id}"]').get_attribute("data-status") == "revoked",
        "the key shown revoked",
    )
    # Refused at once by the process that revoked it, by the others within API_KEY_CACHE_S.
    wait_until(
        lambda: (
            requests.post(f"{url}/tools/search", json=search, headers=bearer).status_code == 401
        ),
        15,
        "the revoked key refused",
    )
    page.get(f"{url}/admin/keys")  # a reload shows the key no more
    assert key not in visible(page, "#keys").text


def wait_row_enabled(driver: WebDriver, doc_id: str, enabled: bool) -> WebElement:
    def check(d: WebDriver) -> WebElement | None:
        row = doc_row(d, doc_id)
        return (
            row
            if row is not None and row.get_attribute("data-enabled") == str(enabled).lower()
            else None
        )

    return wait(driver).until(check, f"{doc_id} listed as {'on' if enabled else 'off'}")


def test_preview_chunks_and_switch_a_document_off_and_on(
    page: WebDriver, kb_service: KbService, tmp_path: Path
) -> None:
    name, phrase = "以旧换新.txt", "旧手机折价最高抵扣三百元"
    (tmp_path / name).write_text(f"以旧换新：{phrase}，需携带<b>身份证</b>到门店办理。", "utf-8")
    sign_in(page, kb_service.url, STAFF)
    css(page, "#file-input").send_keys(str(tmp_path / name))
    upload_item(page, name)
    row = wait_row_status(page, name, "indexed")
    assert row.get_attribute("data-enabled") == "true"

    # The preview lists the chunks, their text as text (the tag is shown, not applied).
    css(row, "button.preview").click()
    assert name in visible(page, "#chunk-preview").text
    wait(page).until(
        lambda d: css(d, "#chunks").get_attribute("data-loaded") == f"{name}@0", "the chunks"
    )
    chunks = page.find_elements(By.CSS_SELECTOR, "#chunks .chunk")
    assert chunks and phrase in chunks[0].text and "<b>身份证</b>" in chunks[0].text
    assert not page.find_elements(By.CSS_SELECTOR, "#chunks b")
    assert f"共 {len(chunks)} 个片段" in css(page, "#chunks-summary").text
    css(page, "#chunks-close").click()
    wait(page).until(ec.invisibility_of_element_located((By.ID, "chunk-preview")), "closed")

    query = "旧手机可以抵扣多少钱"
    assert name in [h.get_attribute("data-document") for h in hit_test(page, query)]

    # Switched off: listed as such, and hit testing finds none of it.
    css(page, 'nav a[href="/admin/documents"]').click()
    css(wait_row_enabled(page, name, True), "button.toggle").click()
    row = wait_row_enabled(page, name, False)
    assert "已停用" in row.text and css(row, "button.toggle").text == "启用"
    assert f"已停用 {name}" in visible(page, "#list-notice").text
    assert name not in [h.get_attribute("data-document") for h in hit_test(page, query)]
    assert hit_test(page, query, document=name) == []
    option = css(page, f'#document option[value="{name}"]')
    assert "已停用" in option.text

    # Switched on again: found at once.
    css(page, 'nav a[href="/admin/documents"]').click()
    css(wait_row_enabled(page, name, False), "button.toggle").click()
    row = wait_row_enabled(page, name, True)
    assert "已停用" not in row.text and css(row, "button.toggle").text == "停用"
    assert name in [h.get_attribute("data-document") for h in hit_test(page, query)]
