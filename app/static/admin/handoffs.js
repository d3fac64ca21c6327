/* 转人工: the hand-off inbox (GET /api/handoffs) with each customer's recent thread, and
 * taking and closing a request (POST /api/handoffs/<id>/take, /close). Customers' words
 * are inserted as text, never as HTML. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page !== "handoffs") return;
  const { $, el, api, problem, show, formatTime } = window.adminKit;
  const list = $("#handoffs");
  const error = $("#handoffs-error");
  const done = $("#handoffs-done");
  const more = $("#handoffs-more");
  const STATES = { open: "待处理", taken: "处理中", closed: "已关闭" };
  const SOURCES = Object.fromEntries([...$("#source").options].map((o) => [o.value, o.textContent]));
  let cursor = null;

  function setCounts(counts) {
    for (const state of Object.keys(STATES)) $(`#count-${state}`).textContent = String(counts[state] ?? 0);
  }

  async function act(h, verb, message) {
    show(error, "");
    show(done, "");
    const r = await api("POST", `/api/handoffs/${h.id}/${verb}`);
    if (!r.ok) {
      show(error, problem(r.status, r.data));
    } else {
      show(done, message);
      setCounts(r.data.counts);
    }
    refresh();
  }

  function who(h) {
    const parts = [];
    if (h.taken_by) parts.push(`${h.taken_by} 于 ${formatTime(h.taken_at)} 接手`);
    if (h.closed_by) parts.push(`${h.closed_by} 于 ${formatTime(h.closed_at)} 关闭`);
    return parts.join("，");
  }

  function node(h) {
    const buttons = [];
    if (h.status === "open") {
      buttons.push(el("button", {
        type: "button", class: "primary small take", text: "接手",
        onclick: () => act(h, "take", `已接手客户 ${h.customer} 的请求`),
      }));
    }
    if (h.status !== "closed") {
      buttons.push(el("button", {
        type: "button", class: "small close", text: "关闭",
        onclick: () => act(h, "close", `已关闭客户 ${h.customer} 的请求`),
      }));
    }
    const thread = h.thread.length
      ? el("ol", { class: "thread" }, h.thread.flatMap((m) => [
          el("li", {}, el("span", { class: "who", text: `${formatTime(m.created_at)} 客户` }), m.question),
          m.reply ? el("li", {}, el("span", { class: "who", text: "回复" }), m.reply) : null,
        ]))
      : el("p", { class: "muted small", text: "没有这位客户的对话记录。" });
    return el(
      "article",
      { class: "group handoff", dataset: { id: String(h.id), status: h.status, customer: h.customer } },
      el("div", { class: "group-head" },
        el("span", { class: "group-title", text: `${SOURCES[h.source] || h.source} · 客户 ${h.customer}` }),
        el("span", {}, el("span", { class: `badge ${h.status} state`, text: STATES[h.status] || h.status }),
          " ", el("span", { class: "muted", text: formatTime(h.created_at) })),
      ),
      h.reason ? el("p", { class: "small", text: `原因：${h.reason}` }) : null,
      h.summary ? el("p", { class: "small", text: `摘要：${h.summary}` }) : null,
      who(h) ? el("p", { class: "muted small taken-by", text: who(h) }) : null,
      thread,
      el("div", { class: "actions" }, buttons),
    );
  }

  async function load(append) {
    const q = new URLSearchParams({ state: $("#state").value });
    if ($("#source").value) q.set("source", $("#source").value);
    if (append && cursor) q.set("cursor", cursor);
    const r = await api("GET", `/api/handoffs?${q}`);
    if (!r.ok) {
      show(error, problem(r.status, r.data));
      return;
    }
    const nodes = r.data.handoffs.map(node);
    if (append) list.append(...nodes);
    else list.replaceChildren(...nodes);
    setCounts(r.data.counts);
    cursor = r.data.next_cursor;
    more.hidden = !cursor;
    $("#handoffs-empty").hidden = list.children.length > 0;
    list.dataset.loaded = "1";
  }

  function refresh() {
    cursor = null;
    load(false);
  }

  $("#handoffs-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    show(done, "");
    refresh();
  });
  more.addEventListener("click", () => load(true));
  refresh();
});
