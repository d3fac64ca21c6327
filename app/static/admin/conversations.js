/* 对话记录: the conversation log (GET /api/conversations), filtered, a page at a time
 * (next_cursor), with each answer's record (sources, scores, timings) on demand and the
 * filtered list as CSV or Excel. Everything customers and the bot wrote is inserted as
 * text, never as HTML. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page !== "conversations") return;
  const { $, el, api, problem, show, formatTime } = window.adminKit;
  const rows = $("#conversation-rows");
  const error = $("#conversations-error");
  const more = $("#conversations-more");
  const CHANNELS = { wechat: "公众号", wecom: "企业微信", kf: "微信客服" };
  // The outcomes' names, as the filter lists them.
  const OUTCOMES = Object.fromEntries([...$("#outcome").options].map((o) => [o.value, o.textContent]));
  let cursor = null;

  // A date of the form, as the start of that day in the browser's time zone.
  const dayStart = (value, plusDays = 0) => {
    const d = new Date(`${value}T00:00:00`);
    d.setDate(d.getDate() + plusDays);
    return d.toISOString();
  };

  function query() {
    const q = new URLSearchParams();
    for (const id of ["channel", "outcome", "customer"]) {
      const v = $(`#${id}`).value.trim();
      if (v) q.set(id, v);
    }
    const text = $("#text").value.trim();
    if (text) q.set("q", text);
    if ($("#since").value) q.set("since", dayStart($("#since").value));
    if ($("#until").value) q.set("until", dayStart($("#until").value, 1));
    return q;
  }

  function detailNode(m) {
    const lines = [];
    if (m.sources.length) {
      lines.push("来源：");
      for (const s of m.sources) {
        lines.push(`  ${[s.source, s.section].filter(Boolean).join(" / ")}（得分 ${s.score}）`);
      }
    }
    lines.push(`状态：${m.status}　送达方式：${m.delivery}`);
    if (m.error) lines.push(`错误：${m.error}`);
    lines.push("回答记录：", JSON.stringify(m.detail, null, 2));
    return el("pre", { class: "detail", text: lines.join("\n") });
  }

  function row(m) {
    const detailRow = el("tr", { class: "detail-row", hidden: true },
      el("td", { colspan: "8" }, detailNode(m)));
    const tr = el(
      "tr",
      { class: "conversation", dataset: { id: String(m.id), outcome: m.outcome } },
      el("td", { text: formatTime(m.created_at) }),
      el("td", { text: CHANNELS[m.channel] || m.channel }),
      el("td", {}, el("button", {
        type: "button",
        class: "link customer",
        text: m.customer,
        title: "看这位客户的全部对话",
        onclick: () => {
          $("#customer").value = m.customer;
          refresh();
        },
      })),
      el("td", { class: "question", text: m.question }),
      el("td", { class: "reply", text: m.reply }),
      el("td", {}, el("span", { class: `badge ${m.outcome}`, text: OUTCOMES[m.outcome] || m.outcome })),
      el("td", { class: "num", text: m.reply_ms === null ? "" : `${(m.reply_ms / 1000).toFixed(1)} 秒` }),
      el("td", {}, el("button", {
        type: "button",
        class: "link show-detail",
        text: "详情",
        onclick: () => { detailRow.hidden = !detailRow.hidden; },
      })),
    );
    return [tr, detailRow];
  }

  async function load(append) {
    show(error, "");
    const q = query();
    if (append && cursor) q.set("cursor", cursor);
    const r = await api("GET", `/api/conversations?${q}`);
    if (!r.ok) {
      show(error, problem(r.status, r.data));
      return;
    }
    const nodes = r.data.messages.flatMap(row);
    if (append) rows.append(...nodes);
    else rows.replaceChildren(...nodes);
    if (r.data.total !== null) $("#conversations-summary").textContent = `共 ${r.data.total} 条`;
    cursor = r.data.next_cursor;
    more.hidden = !cursor;
    rows.dataset.loaded = "1";
  }

  function refresh() {
    const q = query();
    for (const fmt of ["csv", "xlsx"]) {
      q.set("format", fmt);
      $(`#export-${fmt}`).href = `/api/conversations/export?${q}`;
    }
    cursor = null;
    load(false);
  }

  $("#conversations-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  $("#conversations-clear").addEventListener("click", () => {
    $("#conversations-filter").reset();
    refresh();
  });
  more.addEventListener("click", () => load(true));
  const params = new URLSearchParams(location.search);
  if (params.get("customer")) $("#customer").value = params.get("customer");
  refresh();
});
