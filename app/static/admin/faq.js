/* 问答条目: every FAQ entry (GET /api/faq), searched; created (POST), edited in place
 * (PUT with the version edited: someone else's edit first is a 409), disabled, deleted
 * (DELETE ?version=); a spreadsheet's entry is taken over first (POST /api/faq/adopt).
 * Entries' text is inserted as text, never as HTML. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page !== "faq") return;
  const { $, el, api, problem, show } = window.adminKit;
  const rows = $("#faq-rows");
  const error = $("#faq-error");
  const done = $("#faq-done");

  const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);

  function fieldsOf(form) {
    return {
      question: form.elements.question.value,
      paraphrases: lines(form.elements.paraphrases.value),
      answer: form.elements.answer.value,
      category: form.elements.category.value,
    };
  }

  function report(r, message) {
    if (!r.ok) {
      show(error, problem(r.status, r.data));
      return false;
    }
    show(error, "");
    show(done, message);
    return true;
  }

  // A spreadsheet's entry has no id until the staff's table takes it over.
  async function editable(entry) {
    if (entry.id !== null) return entry;
    const r = await api("POST", "/api/faq/adopt", { doc_id: entry.doc_id, question: entry.question });
    return report(r, "") ? r.data.entry : null;
  }

  function editRow(entry, tr) {
    const form = el(
      "form",
      { class: "faq-form edit-faq" },
      el("label", {}, "标准问题", el("input", { type: "text", name: "question", maxlength: "200", value: entry.question })),
      el("label", {}, "相似问法（每行一个）", el("textarea", { name: "paraphrases", class: "wide" })),
      el("label", {}, "答案", el("textarea", { name: "answer", class: "wide", maxlength: "4000" })),
      el("label", {}, "分类", el("input", { type: "text", name: "category", maxlength: "64", value: entry.category })),
      el("label", { class: "check" }, el("input", { type: "checkbox", name: "enabled", checked: entry.enabled }), "启用"),
      el("div", { class: "actions" },
        el("button", { type: "submit", class: "primary small save-edit", text: "保存修改" }),
        el("button", { type: "button", class: "small", text: "取消", onclick: () => refresh() })),
    );
    form.elements.paraphrases.value = entry.paraphrases.join("\n");
    form.elements.answer.value = entry.answer;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const target = await editable(entry);
      if (!target) return;
      const body = { ...fieldsOf(form), enabled: form.elements.enabled.checked, version: target.version };
      const r = await api("PUT", `/api/faq/${target.id}`, body);
      if (report(r, `已保存“${body.question}”，几秒内生效`)) refresh();
    });
    tr.replaceChildren(el("td", { colspan: "7" }, form));
  }

  async function remove(entry) {
    if (!window.confirm(`删除问答“${entry.question}”？`)) return;
    const target = await editable(entry);
    if (!target) return;
    const r = await api("DELETE", `/api/faq/${target.id}?version=${target.version}`);
    if (report(r, `已删除“${entry.question}”`)) refresh();
  }

  function row(entry) {
    const tr = el("tr", { class: "faq-entry", dataset: { id: String(entry.id ?? ""), question: entry.question } });
    tr.append(
      el("td", { class: "question", text: entry.question }),
      el("td", { class: "paraphrases", text: entry.paraphrases.join("\n") }),
      el("td", { class: "reply answer", text: entry.answer }),
      el("td", { text: entry.category }),
      el("td", {}, el("span", { class: `badge ${entry.enabled ? "indexed" : ""}`, text: entry.enabled ? "启用" : "停用" })),
      el("td", { class: "small muted", text: entry.origin === "staff" ? `员工${entry.updated_by ? `（${entry.updated_by}）` : ""}` : `表格 ${entry.doc_id}` }),
      el("td", {}, el("div", { class: "actions" },
        el("button", { type: "button", class: "small edit", text: "修改", onclick: () => editRow(entry, tr) }),
        el("button", { type: "button", class: "small delete", text: "删除", onclick: () => remove(entry) }))),
    );
    return tr;
  }

  async function refresh() {
    const q = new URLSearchParams();
    if ($("#faq-q").value.trim()) q.set("q", $("#faq-q").value.trim());
    if ($("#faq-category-filter").value.trim()) q.set("category", $("#faq-category-filter").value.trim());
    const r = await api("GET", `/api/faq?${q}`);
    if (!r.ok) {
      show(error, problem(r.status, r.data));
      return;
    }
    rows.replaceChildren(...r.data.entries.map(row));
    $("#faq-summary").textContent = `共 ${r.data.total} 条`;
    rows.dataset.loaded = "1";
  }

  $("#faq-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  $("#faq-new").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const body = fieldsOf(form);
    const r = await api("POST", "/api/faq", body);
    if (report(r, `已新建问答“${body.question}”，几秒内生效`)) {
      form.reset();
      refresh();
    }
  });
  refresh();
});
