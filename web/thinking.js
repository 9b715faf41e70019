// The "Thinking" block above an answer: the model's reasoning, open while it streams, collapsed once the answer's
// text begins (or the answer ends), and a click away after that. The reasoning is shown as plain text (a text
// node), so nothing in it can become markup, and growing it costs no re-render of what is already there.

/**
 * Adds a piece of reasoning to an answer's Thinking block, made (open) the first time.
 *
 * @param {HTMLElement} answer the answer's element; the block goes above its `.content`
 * @param {string} text
 */
export function appendReasoning(answer, text) {
  let block = answer.querySelector(":scope > details.thinking");
  if (!block) {
    block = document.createElement("details");
    block.className = "thinking";
    block.open = true;
    block.dataset.state = "streaming";
    const summary = document.createElement("summary");
    summary.textContent = "Thinking";
    const reasoning = document.createElement("div");
    reasoning.className = "reasoning";
    reasoning.append(document.createTextNode(""));
    block.append(summary, reasoning);
    answer.querySelector(":scope > .content").before(block);
  }
  block.querySelector(".reasoning").firstChild.appendData(text);
}

/**
 * Folds an answer's Thinking block away, once: the answer has begun, or ended. A block the reader opened again
 * stays open.
 *
 * @param {HTMLElement} answer
 */
export function collapseReasoning(answer) {
  const block = answer.querySelector(":scope > details.thinking");
  if (!block || block.dataset.state === "done") return;
  block.dataset.state = "done";
  block.open = false;
}

/**
 * Shows a stored answer's reasoning: collapsed, unless the model is still reasoning (no text yet, and still live).
 *
 * @param {HTMLElement} answer
 * @param {{reasoning?: string, content: string, status: string}} message
 */
export function showReasoning(answer, message) {
  if (!message.reasoning) return;
  appendReasoning(answer, message.reasoning);
  const live = message.status === "pending" || message.status === "streaming";
  if (!live || message.content) collapseReasoning(answer);
}
