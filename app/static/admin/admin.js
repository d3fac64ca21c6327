/* Knowledge admin pages: plain JavaScript, no build step, nothing from the network.
 *
 * The pages are rendered by the server for a signed-in user; this file fills them from
 * /api/knowledge with the session cookie and the CSRF token of <meta name="csrf-token">.
 * Everything that came from users (file names, passages, errors) is inserted as text,
 * never as HTML.
 */
"use strict";

(() => {
  const LOGIN = "/admin/login";
  const BUSY_POLL_MS = 1000;
  const IDLE_POLL_MS = 10000;
  const WAIT_FOR_RUN_MS = 120000;

  const $ = (selector, root = document) => root.querySelector(selector);
  const csrf = () => $('meta[name="csrf-token"]')?.content || "";

  // --- helpers ---------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function show(node, message) {
    if (!node) return;
    node.textContent = message || "";
    node.hidden = !message;
  }

  function bar(percent, extraClass) {
    const fill = el("span");
    fill.style.width = `${Math.max(0, Math.min(100, percent))}%`;
    return el("div", {
      class: `bar ${extraClass || ""}`.trim(),
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(Math.round(percent)),
    }, fill);
  }

  function setBar(node, percent, extraClass) {
    node.className = `bar ${extraClass || ""}`.trim();
    node.setAttribute("aria-valuenow", String(Math.round(percent)));
    node.firstElementChild.style.width = `${Math.max(0, Math.min(100, percent))}%`;
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    return date.toLocaleString("zh-CN", { hour12: false });
  }

  function formatBytes(n) {
    if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
    if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`;
    return `${n} B`;
  }

  function localizeTimes(root = document) {
    for (const node of root.querySelectorAll("time[datetime]")) {
      node.textContent = formatTime(node.getAttribute("datetime"));
    }
  }

  function toLogin() {
    const here = location.pathname + location.search;
    location.assign(`${LOGIN}?next=${encodeURIComponent(here)}`);
  }

  // What went wrong, in Chinese first, then the API's own words (they name the problem:
  // the missing column, the limit, the damaged file).
  const STATUS_HINTS = {
    400: "请求有误",
    401: "请先登录",
    403: "没有权限",
    404: "找不到该文档",
    409: "同名文档已存在，请在列表中使用“替换”上传新版本",
    413: "文件太大",
    415: "不支持的文件类型",
    422: "文件无法使用",
    429: "登录失败次数过多，请稍后再试",
    503: "服务暂时不可用，请稍后再试",
  };

  function problem(status, body) {
    const detail = body && typeof body.error === "string" ? body.error : "";
    const hint = status ? STATUS_HINTS[status] || `出错了（${status}）` : "无法连接服务器，请检查网络";
    return detail ? `${hint}：${detail}` : hint;
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_exc) {
      return { ok: false, status: 0, data: null };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_exc) {
      data = null;
    }
    if (response.status === 401 && !path.startsWith("/api/auth/")) toLogin();
    return { ok: response.ok, status: response.status, data };
  }

  // A poller that runs again soon while something is moving, and rarely otherwise.
  function poller(tick) {
    let timer = null;
    let running = false;
    async function run() {
      clearTimeout(timer);
      if (running) return;
      running = true;
      let busy = false;
      try {
        busy = await tick();
      } finally {
        running = false;
      }
      timer = setTimeout(run, busy ? BUSY_POLL_MS : IDLE_POLL_MS);
    }
    return run;
  }

  // --- sign in / out ---------------------------------------------------------------

  function initLogin() {
    const form = $("#login-form");
    const error = $("#login-error");
    const submit = $("#login-submit");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const username = $("#username").value.trim();
      const password = $("#password").value;
      if (!username || !password) {
        show(error, "请输入用户名和密码。");
        return;
      }
      submit.disabled = true;
      show(error, "");
      const r = await api("POST", "/api/auth/login", { username, password });
      if (r.ok) {
        location.assign(form.dataset.next || "/admin/documents");
        return;
      }
      submit.disabled = false;
      show(error, r.status === 401 ? "用户名或密码错误，请重试。" : problem(r.status, r.data));
      $("#password").select();
    });
  }

  function initLogout() {
    $("#logout")?.addEventListener("click", async () => {
      await api("POST", "/api/auth/logout");
      location.assign(LOGIN);
    });
  }

  // --- documents -------------------------------------------------------------------

  const STATUS_NAMES = { queued: "排队中", processing: "索引中", indexed: "已索引", failed: "失败" };
  const KIND_NAMES = { faq: "问答表", text: "文档" };

  function stageText(stage) {
    if (!stage) return "";
    let m = /^reading page (\d+)\/(\d+)$/.exec(stage);
    if (m) return `正在读取第 ${m[1]}/${m[2]} 页`;
    m = /^indexing (\d+)\/(\d+) chunks$/.exec(stage);
    if (m) return `正在写入索引：${m[1]}/${m[2]} 个片段`;
    const known = {
      "waiting for a worker": "等待后台处理",
      "reading the file": "正在读取文件",
      indexed: "已完成",
      failed: "失败",
    };
    return known[stage] || stage;
  }

  function initDocuments() {
    const zone = $("#dropzone");
    const picker = $("#file-input");
    const replacer = $("#replace-input");
    const uploads = $("#uploads");
    const tbody = $("#documents tbody");
    const empty = $("#documents-empty");
    const filter = $("#doc-filter");
    const listError = $("#list-error");
    const listNotice = $("#list-notice");
    const dialog = $("#confirm-delete");
    const maxBytes = Number(zone.dataset.maxBytes);
    const suffixes = zone.dataset.suffixes.split(",");

    const rows = new Map(); // document id -> { tr, json }
    const following = new Map(); // document id -> upload item waiting for its indexing
    const queue = [];
    let sending = false;
    let documents = [];
    let deleting = null;

    // Upload items: one per file, from the first byte sent to the end of its indexing.
    function uploadItem(file, replacing) {
      const state = el("span", { class: "state", text: "等待上传" });
      const progress = bar(0, "upload-phase");
      const message = el("div", { class: "message error" });
      const label = replacing ? `${file.name}（替换 ${replacing}）` : file.name;
      const node = el(
        "li",
        { class: "upload", dataset: { state: "waiting", name: file.name } },
        el("span", { class: "name", text: label }),
        state,
        progress,
        message,
      );
      uploads.prepend(node);
      return { file, replacing, node, state, progress, message, servedBefore: 0 };
    }

    function setItem(item, phase, percent, text, error) {
      item.node.dataset.state = phase;
      item.state.textContent = text;
      const cls = phase === "uploading" ? "upload-phase" : phase === "failed" ? "failed" : "";
      setBar(item.progress, percent, cls);
      show(item.message, error || "");
    }

    function refuseEarly(file) {
      const dot = file.name.lastIndexOf(".");
      const suffix = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
      if (!suffixes.includes(suffix)) {
        return `不支持的文件类型：${suffix || "（没有扩展名）"}。可以上传：${suffixes.join("、")}`;
      }
      if (file.size === 0) return "文件是空的（0 字节）。";
      if (file.size > maxBytes) {
        return `文件太大：${formatBytes(file.size)}，超过了 ${formatBytes(maxBytes)} 的上传限制。`;
      }
      return "";
    }

    function enqueue(files, replacing) {
      for (const file of files) {
        const item = uploadItem(file, replacing);
        const refused = refuseEarly(file);
        if (refused) {
          setItem(item, "failed", 100, "未上传", refused);
          continue;
        }
        queue.push(item);
      }
      pump();
    }

    async function pump() {
      if (sending) return;
      sending = true;
      while (queue.length) await send(queue.shift());
      sending = false;
    }

    function send(item) {
      return new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        const url = item.replacing
          ? `/api/knowledge/documents/${encodeURIComponent(item.replacing)}`
          : "/api/knowledge/documents";
        xhr.open(item.replacing ? "PUT" : "POST", url);
        xhr.setRequestHeader("X-CSRF-Token", csrf());
        xhr.setRequestHeader("Accept", "application/json");
        const uploading = (percent) =>
          setItem(item, "uploading", percent, `上传中 ${percent}%`);
        xhr.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable) uploading(Math.round((100 * event.loaded) / event.total));
        });
        xhr.upload.addEventListener("load", () => uploading(100));
        xhr.addEventListener("load", () => {
          let data = null;
          try {
            data = JSON.parse(xhr.responseText);
          } catch (_exc) {
            data = null;
          }
          accepted(item, xhr.status, data);
          resolve();
        });
        xhr.addEventListener("error", () => {
          setItem(item, "failed", 100, "上传失败", problem(0, null));
          resolve();
        });
        const form = new FormData();
        form.append("file", item.file, item.file.name);
        const category = $("#upload-category").value.trim();
        if (category) form.append("category", category);
        uploading(0);
        xhr.send(form);
      });
    }

    function accepted(item, status, data) {
      if (status === 401) {
        toLogin();
        return;
      }
      if (status !== 202 || !data || !data.document) {
        setItem(item, "failed", 100, "上传失败", problem(status, data));
        return;
      }
      const doc = data.document;
      item.servedBefore = item.replacing ? doc.version : 0;
      item.node.dataset.document = doc.id;
      following.set(doc.id, item);
      setItem(item, "indexing", 0, "已上传，等待索引");
      refresh();
    }

    function follow(doc, item) {
      if (doc.status === "indexed" && doc.version > item.servedBefore) {
        following.delete(doc.id);
        setItem(item, "done", 100, `完成 · ${doc.chunk_count} 个片段已可检索`);
      } else if (doc.status === "failed") {
        following.delete(doc.id);
        setItem(item, "failed", 100, "索引失败", doc.error);
      } else {
        const stage = stageText(doc.stage);
        setItem(item, "indexing", doc.progress, `索引中 ${doc.progress}% · ${stage}`);
      }
    }

    function statusCell(doc) {
      const busy = doc.status === "queued" || doc.status === "processing";
      const cell = el(
        "td",
        { class: "status-cell" },
        el("span", { class: `badge ${doc.status}`, text: STATUS_NAMES[doc.status] || doc.status }),
        doc.enabled === false
          ? el("span", { class: "badge disabled", text: "已停用", title: "客服不使用其中的内容，可随时启用" })
          : null,
      );
      if (busy) {
        cell.append(bar(doc.progress), el("div", { class: "stage", text: `${doc.progress}% · ${stageText(doc.stage)}` }));
      } else if (doc.error) {
        const prefix = doc.status === "failed" ? "" : "提示：";
        cell.append(el("div", { class: "doc-error", text: prefix + doc.error }));
      }
      return cell;
    }

    function row(doc) {
      const sub = [formatBytes(doc.size_bytes)];
      const stem = doc.id.replace(/\.[^.]*$/, "");
      if (doc.title && doc.title !== doc.id && doc.title !== stem) sub.unshift(doc.title);
      const when = doc.updated_at || doc.created_at;
      const enabled = doc.enabled !== false;
      // Preview and switching are documents.js's (the "documents:action" event).
      const act = (action) =>
        document.dispatchEvent(new CustomEvent("documents:action", { detail: { action, doc } }));
      return el(
        "tr",
        { class: enabled ? "" : "disabled", dataset: { id: doc.id, status: doc.status, enabled: String(enabled) } },
        el(
          "td",
          {},
          el("div", { class: "doc-name", text: doc.id }),
          el("div", { class: "doc-sub", text: sub.join(" · ") }),
        ),
        el("td", { text: doc.category || "—" }),
        el("td", { text: KIND_NAMES[doc.kind] || doc.kind }),
        statusCell(doc),
        el("td", { class: "num", text: String(doc.chunk_count) }),
        el("td", { class: "num", text: doc.version ? `v${doc.version}` : "—" }),
        el(
          "td",
          {},
          el("div", { text: formatTime(when) }),
          el("div", { class: "doc-sub", text: doc.updated_by || doc.created_by || "" }),
        ),
        el(
          "td",
          {},
          el(
            "div",
            { class: "actions" },
            el("button", {
              type: "button",
              class: "small preview",
              text: "预览",
              title: "查看文档被切分成的片段",
              onclick: () => act("preview"),
            }),
            el("button", {
              type: "button",
              class: "small toggle",
              text: enabled ? "停用" : "启用",
              title: enabled ? "保留文档，但客服不再使用其中的内容" : "客服重新使用其中的内容",
              onclick: () => act(enabled ? "disable" : "enable"),
            }),
            el("button", {
              type: "button",
              class: "small replace",
              text: "替换",
              title: "上传新版本，索引完成后替换旧版本",
              onclick: () => {
                replacer.dataset.target = doc.id;
                replacer.click();
              },
            }),
            el("button", {
              type: "button",
              class: "small delete",
              text: "删除",
              onclick: () => confirmDelete(doc.id),
            }),
          ),
        ),
      );
    }

    function render() {
      const needle = filter.value.trim().toLowerCase();
      const seen = new Set();
      for (const doc of documents) {
        seen.add(doc.id);
        const json = JSON.stringify(doc);
        let entry = rows.get(doc.id);
        if (!entry || entry.json !== json) {
          const tr = row(doc);
          if (entry) entry.tr.replaceWith(tr);
          entry = { tr, json };
          rows.set(doc.id, entry);
        }
        const text = `${doc.id} ${doc.title} ${doc.category}`.toLowerCase();
        entry.tr.hidden = Boolean(needle) && !text.includes(needle);
        tbody.append(entry.tr); // keeps the API's order (newest first)
      }
      for (const [id, entry] of rows) {
        if (!seen.has(id)) {
          entry.tr.remove();
          rows.delete(id);
        }
      }
      empty.hidden = documents.length > 0;
    }

    const refresh = poller(async () => {
      const r = await api("GET", "/api/knowledge/documents");
      if (!r.ok) {
        show(listError, problem(r.status, r.data));
        return true;
      }
      show(listError, "");
      documents = r.data.documents;
      render();
      for (const doc of documents) {
        const item = following.get(doc.id);
        if (item) follow(doc, item);
      }
      const busy = documents.some((d) => d.status === "queued" || d.status === "processing");
      return busy || following.size > 0 || queue.length > 0;
    });

    function confirmDelete(docId) {
      deleting = docId;
      $("#delete-name").textContent = docId;
      dialog.returnValue = "";
      dialog.showModal();
    }

    dialog.addEventListener("close", async () => {
      const docId = deleting;
      deleting = null;
      if (dialog.returnValue !== "confirm" || !docId) return;
      show(listNotice, "");
      const r = await api("DELETE", `/api/knowledge/documents/${encodeURIComponent(docId)}`);
      if (r.ok) {
        show(listError, "");
        show(listNotice, `已删除 ${docId}（移除 ${r.data.chunks_removed} 个片段）。`);
      } else {
        show(listError, problem(r.status, r.data));
      }
      refresh();
    });

    // Drag and drop, or the file picker.
    zone.addEventListener("click", () => picker.click());
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        picker.click();
      }
    });
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
        zone.classList.add("over");
      });
    }
    zone.addEventListener("dragleave", (event) => {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("over");
    });
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      enqueue([...(event.dataTransfer?.files || [])]);
    });
    // A file dropped beside the zone must not make the browser leave the page to open it.
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (event) => event.preventDefault());
    }
    picker.addEventListener("change", () => {
      enqueue([...picker.files]);
      picker.value = "";
    });
    replacer.addEventListener("change", () => {
      const target = replacer.dataset.target;
      if (target && replacer.files.length) enqueue([replacer.files[0]], target);
      replacer.value = "";
    });
    filter.addEventListener("input", render);
    document.addEventListener("documents:changed", () => refresh());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    refresh();
  }

  // --- hit testing -----------------------------------------------------------------

  function hitSource(hit) {
    const parts = [hit.source || hit.document_id];
    if (hit.page) parts.push(`第 ${hit.page} 页`);
    if (hit.section) parts.push(hit.section);
    if (hit.kind === "faq" && hit.row) parts.push(`第 ${hit.row} 行`);
    if (hit.category) parts.push(`分类：${hit.category}`);
    return `来源：${parts.join(" · ")}`;
  }

  function hitNode(hit) {
    const head = el(
      "div",
      { class: "hit-head" },
      el("span", { class: "rank", text: `#${hit.rank}` }),
      el("span", { class: "score", text: `得分 ${hit.score.toFixed(4)}` }),
      hit.similarity === null || hit.similarity === undefined
        ? null
        : el("span", { class: "similarity muted", text: `相似度 ${hit.similarity.toFixed(3)}` }),
      el("span", { class: "source", text: hitSource(hit) }),
    );
    const body = [];
    if (hit.kind === "faq" && hit.question) {
      // An FAQ entry: its question and answer; the indexed text (with the similar
      // questions) on demand.
      body.push(
        el(
          "div",
          { class: "faq" },
          el("div", { text: `问：${hit.question}` }),
          el("div", { text: `答：${hit.answer}` }),
        ),
        el(
          "details",
          {},
          el("summary", { text: "检索用的文本" }),
          el("div", { class: "text", text: hit.text }),
        ),
      );
    } else {
      body.push(el("div", { class: "text", text: hit.text }));
    }
    return el("li", { class: "hit", dataset: { rank: hit.rank, document: hit.document_id } }, head, body);
  }

  function initSearch() {
    const form = $("#search-form");
    const error = $("#search-error");
    const summary = $("#search-summary");
    const list = $("#hits");
    const submit = $("#search-submit");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const query = $("#query").value.trim();
      if (!query) {
        show(error, "请输入要测试的问题。");
        return;
      }
      const body = {
        query,
        top_k: Number($("#top-k").value) || 5,
        mode: $("#mode").value,
      };
      if ($("#category").value) body.category = $("#category").value;
      if ($("#document").value) body.document_id = $("#document").value;
      submit.disabled = true;
      show(error, "");
      const r = await api("POST", "/api/knowledge/search", body);
      submit.disabled = false;
      list.replaceChildren();
      if (!r.ok) {
        show(summary, "");
        show(error, problem(r.status, r.data));
        return;
      }
      const hits = r.data.hits;
      show(
        summary,
        hits.length
          ? `找到 ${hits.length} 条相关段落（用时 ${r.data.took_ms} 毫秒），按相关程度排序。`
          : "没有找到相关段落。可以换个说法，或检查分类与文档筛选。",
      );
      list.replaceChildren(...hits.map(hitNode));
    });
  }

  // --- reindex ---------------------------------------------------------------------

  const RUN_STATUS = {
    running: "进行中",
    succeeded: "成功",
    up_to_date: "已是最新",
    failed: "失败",
    abandoned: "已中断",
  };
  const TRIGGERS = { api: "网页/接口", cli: "命令行", beat: "定时任务" };

  function runRow(run) {
    const status = el(
      "td",
      {},
      el("span", { class: `badge ${run.status}`, text: RUN_STATUS[run.status] || run.status }),
    );
    if (run.error) status.append(el("div", { class: "doc-error", text: run.error }));
    const by = TRIGGERS[run.trigger] || run.trigger;
    return el(
      "tr",
      { dataset: { id: run.id, status: run.status } },
      el("td", { text: formatTime(run.started_at) }),
      el("td", { text: run.actor && run.actor !== run.trigger ? `${by} · ${run.actor}` : by }),
      el("td", { text: run.full ? "全量" : "增量" }),
      status,
      el(
        "td",
        { class: "status-cell" },
        bar(run.progress),
        el("div", { class: "stage", text: `${run.done}/${run.total} 个文档 · ${run.progress}%` }),
      ),
      el("td", { class: "num", text: String(run.reused) }),
      el("td", { class: "num", text: String(run.rebuilt) }),
      el("td", { class: "num", text: String(run.failed) }),
      el("td", { class: "num", text: String(run.chunks) }),
    );
  }

  function initReindex() {
    const tbody = $("#runs tbody");
    const empty = $("#runs-empty");
    const error = $("#reindex-error");
    const notice = $("#reindex-notice");
    const form = $("#reindex-form");
    let newestId = 0;
    let waitingForRun = false;
    let waitingSince = 0;

    const refresh = poller(async () => {
      const r = await api("GET", "/api/knowledge/reindex");
      if (!r.ok) {
        show(error, problem(r.status, r.data));
        return true;
      }
      const runs = r.data.runs;
      tbody.replaceChildren(...runs.map(runRow));
      empty.hidden = runs.length > 0;
      const newest = runs.length ? runs[0].id : 0;
      if (waitingForRun && newest > newestId) {
        waitingForRun = false;
        show(notice, "");
      }
      if (waitingForRun && Date.now() - waitingSince > WAIT_FOR_RUN_MS) {
        waitingForRun = false;
        show(notice, "后台还没有开始这次重建：可能另一次重建正在进行，或后台任务进程没有运行。");
      }
      if (!waitingForRun) newestId = newest;
      return waitingForRun || runs.some((run) => run.status === "running");
    });

    form?.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $("#reindex-start");
      button.disabled = true;
      show(error, "");
      const r = await api("POST", "/api/knowledge/reindex", { full: $("#reindex-full").checked });
      button.disabled = false;
      if (!r.ok) {
        show(error, problem(r.status, r.data));
        return;
      }
      waitingForRun = true;
      waitingSince = Date.now();
      show(notice, "已提交，等待后台开始重建…");
      refresh();
    });
    refresh();
  }

  // --- API keys (admins) -------------------------------------------------------------

  function initKeys() {
    const form = $("#key-form");
    const name = $("#key-name");
    const error = $("#key-error");
    const fresh = $("#key-new");
    const body = $("#keys tbody");

    function keyRow(key) {
      const revoked = Boolean(key.revoked_at);
      const revoke = revoked
        ? null
        : el("button", {
            type: "button",
            class: "danger",
            text: "吊销",
            onclick: async () => {
              if (!window.confirm(`吊销密钥“${key.name}”？使用它的 Dify 配置将立即无法访问。`)) return;
              const r = await api("DELETE", `/api/apikeys/${key.id}`);
              if (!r.ok) show(error, problem(r.status, r.data));
              refresh();
            },
          });
      return el(
        "tr",
        { dataset: { id: String(key.id), status: revoked ? "revoked" : "active" } },
        el("td", { text: key.name }),
        el("td", {}, el("code", { text: `${key.prefix}…` })),
        el("td", { text: formatTime(key.created_at) }),
        el("td", { text: revoked ? `已吊销（${formatTime(key.revoked_at)}）` : "有效" }),
        el("td", {}, revoke),
      );
    }

    async function refresh() {
      const r = await api("GET", "/api/apikeys");
      if (!r.ok) {
        show(error, problem(r.status, r.data));
        return;
      }
      body.replaceChildren(...r.data.api_keys.map(keyRow));
      $("#keys-empty").hidden = r.data.api_keys.length > 0;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      show(error, "");
      const r = await api("POST", "/api/apikeys", { name: name.value });
      if (!r.ok) {
        show(error, problem(r.status, r.data));
        return;
      }
      $("#key-plaintext").textContent = r.data.key;
      fresh.hidden = false;
      name.value = "";
      refresh();
    });
    refresh();
  }

  // The helpers the other pages' scripts (unanswered.js) build on.
  window.adminKit = { $, el, api, problem, show, formatTime };

  // --- start -----------------------------------------------------------------------

  const PAGES = {
    login: initLogin,
    documents: initDocuments,
    search: initSearch,
    reindex: initReindex,
    keys: initKeys,
  };

  document.addEventListener("DOMContentLoaded", () => {
    initLogout();
    localizeTimes();
    PAGES[document.body.dataset.page]?.();
  });
})();
