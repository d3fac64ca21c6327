/* 未解决问题: the refused and handed-off questions, grouped (GET /api/unanswered), and
 * what staff do with a group (POST /api/unanswered/faq, /attach, /dismiss). Customers'
 * words are inserted as text, never as HTML. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page !== "unanswered") return;
  const { $, el, api, problem, show, formatTime } = window.adminKit;
  const list = $("#groups");
  const error = $("#unanswered-error");
  const done = $("#unanswered-done");

  async function act(path, body, message) {
    show(error, "");
    const r = await api("POST", path, body);
    if (!r.ok) {
      show(error, problem(r.status, r.data));
      return;
    }
    show(done, message);
    refresh();
  }

  function suggestionNode(group, s) {
    const target = s.id !== null ? { entry_id: s.id } : { doc_id: s.doc_id, question: s.question };
    return el(
      "li",
      { class: "suggestion" },
      el("span", { text: `${s.question}（相似度 ${s.score.toFixed(3)}）` }),
      el("button", {
        type: "button",
        class: "small attach",
        text: "加为相似问法",
        onclick: () =>
          act("/api/unanswered/attach", { questions: group.questions, ...target },
              `已把 ${group.questions.length} 个问法加到“${s.question}”`),
      }),
    );
  }

  function groupNode(group) {
    const question = el("input", { type: "text", class: "faq-question", maxlength: "200", value: group.title });
    const answer = el("textarea", { class: "faq-answer", maxlength: "4000", placeholder: "给客户的答案（原样发送）" });
    const category = el("input", { type: "text", class: "faq-category", maxlength: "64", placeholder: "分类（可不填）" });
    const form = el(
      "form",
      { class: "new-faq" },
      el("label", {}, "标准问题", question),
      el("label", {}, "答案", answer),
      el("label", {}, "分类", category),
      el("div", {}, el("button", { type: "submit", class: "primary save-faq", text: "保存为新问答" })),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act("/api/unanswered/faq", {
        questions: group.questions,
        question: question.value,
        answer: answer.value,
        category: category.value,
      }, `已新建问答“${question.value}”，几秒内生效`);
    });
    const suggestions = group.suggestions.length
      ? el("div", {}, el("p", { class: "muted small", text: "最接近的已有问答：" }),
          el("ul", {}, group.suggestions.map((s) => suggestionNode(group, s))))
      : null;
    return el(
      "article",
      { class: "group", dataset: { id: group.id, count: String(group.count) } },
      el("div", { class: "group-head" },
        el("span", { class: "group-title", text: group.title }),
        el("span", { class: "muted", text: `${group.count} 次 · ${group.customers} 位客户 · 最近 ${formatTime(group.newest_at)}` }),
      ),
      el("ul", { class: "examples" }, group.examples.map((e) =>
        el("li", { text: `${e.text}${e.count > 1 ? `（${e.count} 次）` : ""}` }))),
      suggestions,
      form,
      el("div", {}, el("button", {
        type: "button",
        class: "link dismiss",
        text: "忽略这一组",
        onclick: () => act("/api/unanswered/dismiss", { questions: group.questions }, "已忽略"),
      })),
    );
  }

  async function refresh() {
    const r = await api("GET", `/api/unanswered?days=${encodeURIComponent($("#days").value)}`);
    if (!r.ok) {
      show(error, problem(r.status, r.data));
      return;
    }
    $("#unanswered-summary").textContent =
      `${r.data.total_questions} 个问题，${r.data.total_groups} 组`;
    list.replaceChildren(...r.data.groups.map(groupNode));
    list.dataset.loaded = "1";
  }

  $("#unanswered-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  refresh();
});
