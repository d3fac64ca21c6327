/* 知识文档: the preview of a document's chunks (GET /api/knowledge/documents/<id>/chunks,
 * a page at a time) and switching a document off and on (PATCH {"enabled"}), for the
 * buttons admin.js draws in each row (the "documents:action" event); after a switch the
 * list is drawn again ("documents:changed"). Chunks' text is inserted as text, never as
 * HTML. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page !== "documents") return;
  const { $, el, api, problem, show } = window.adminKit;
  const PAGE = 20;
  const dialog = $("#chunk-preview");
  const list = $("#chunks");
  const summary = $("#chunks-summary");
  const error = $("#chunks-error");
  const prev = $("#chunks-prev");
  const next = $("#chunks-next");
  let showing = null; // { id, offset, total }

  const path = (docId) => `/api/knowledge/documents/${encodeURIComponent(docId)}`;

  function chunkNode(chunk) {
    const where = [`#${chunk.position + 1}`];
    if (chunk.page) where.push(`第 ${chunk.page} 页`);
    if (chunk.section) where.push(chunk.section);
    if (chunk.kind === "faq" && chunk.row) where.push(`第 ${chunk.row} 行`);
    const body =
      chunk.kind === "faq" && chunk.question
        ? el(
            "div",
            { class: "faq" },
            el("div", { text: `问：${chunk.question}` }),
            chunk.similar_questions.length
              ? el("div", { class: "muted", text: `相似问法：${chunk.similar_questions.join("、")}` })
              : null,
            el("div", { text: `答：${chunk.answer}` }),
          )
        : el("div", { class: "text", text: chunk.text });
    return el(
      "li",
      { class: "chunk", dataset: { chunk: chunk.chunk_id, position: String(chunk.position) } },
      el("div", { class: "chunk-head muted", text: `${where.join(" · ")} · ${chunk.chars} 字` }),
      body,
    );
  }

  async function load(docId, offset) {
    show(error, "");
    prev.disabled = next.disabled = true;
    const r = await api("GET", `${path(docId)}/chunks?offset=${offset}&limit=${PAGE}`);
    if (!showing || showing.id !== docId) return; // closed or another opened meanwhile
    if (!r.ok) {
      list.replaceChildren();
      show(summary, "");
      show(error, problem(r.status, r.data));
      return;
    }
    const { total, chunks, document: doc } = r.data;
    showing.offset = offset;
    showing.total = total;
    list.replaceChildren(...chunks.map(chunkNode));
    const off = doc.enabled === false ? "（已停用：客服不使用这些片段）" : "";
    show(
      summary,
      total
        ? `共 ${total} 个片段，显示第 ${offset + 1}–${offset + chunks.length} 个${off}`
        : `没有片段：文档可能还在索引中，或索引失败${off}`,
    );
    list.dataset.loaded = `${docId}@${offset}`;
    prev.disabled = offset <= 0;
    next.disabled = offset + chunks.length >= total;
  }

  function preview(doc) {
    showing = { id: doc.id, offset: 0, total: 0 };
    $("#chunks-name").textContent = doc.id;
    list.replaceChildren();
    delete list.dataset.loaded;
    show(summary, "正在读取…");
    if (!dialog.open) dialog.showModal();
    load(doc.id, 0);
  }

  async function setEnabled(doc, enabled) {
    show($("#list-notice"), "");
    const r = await api("PATCH", path(doc.id), { enabled });
    if (r.ok) {
      show($("#list-error"), "");
      show(
        $("#list-notice"),
        enabled
          ? `已启用 ${doc.id}：客服重新使用其中的内容。`
          : `已停用 ${doc.id}：文档保留，但客服和命中测试不再使用其中的内容。`,
      );
    } else {
      show($("#list-error"), problem(r.status, r.data));
    }
    document.dispatchEvent(new CustomEvent("documents:changed"));
  }

  document.addEventListener("documents:action", (event) => {
    const { action, doc } = event.detail;
    if (action === "preview") preview(doc);
    else if (action === "disable") setEnabled(doc, false);
    else if (action === "enable") setEnabled(doc, true);
  });
  prev.addEventListener("click", () => {
    if (showing) load(showing.id, Math.max(0, showing.offset - PAGE));
  });
  next.addEventListener("click", () => {
    if (showing) load(showing.id, showing.offset + PAGE);
  });
  dialog.addEventListener("close", () => {
    showing = null;
  });
});
