/**
 * Code blocks in a rendered answer, as chat apps show them: highlighted by highlight.js (vendored), under a bar that
 * names the language and has a copy button, scrolling sideways rather than wrapping.
 *
 * It runs on the sanitised answer (safety.js), so it adds to markup that is already safe: the language comes from
 * the only class the sanitiser keeps (`language-…` on a <code>), and highlight.js's output is checked to be what it
 * promises (the code's own text, escaped, in <span class="hljs-…"> elements) before it replaces the text.
 *
 * @module code-blocks
 */
import hljs from "./vendor/highlight.min.js";
import { copyButton } from "./copy-button.js";

const LANGUAGE_CLASS = /^language-([\w+-]+)$/;
// What highlight.js puts on its spans: "hljs-title", with modifiers such as "class_" or "inherited__".
const TOKEN_CLASS = /^(hljs-[\w-]+|[a-z]+_+)$/;
// Highlighting runs again at each render (about ten a second while an answer streams): past this size a block is
// shown plain, so one huge paste cannot slow every render down. highlight.js took ~5 ms for 20,000 characters of
// Python here (Node, warmed up; ~26 ms for 80,000), so ten renders a second spend at most ~5% of it on a block.
// Languages are never guessed: highlightAuto tries every grammar, at each render, and often guesses wrong on a
// short block.
const MAX_HIGHLIGHTED_CHARS = 20_000;

/**
 * Gives every `pre > code` under `root` its bar and its colours. Call it again after each render: it works on the
 * fresh markup that render made.
 *
 * @param {HTMLElement} root an answer's content element
 */
export function decorateCodeBlocks(root) {
  for (const code of root.querySelectorAll("pre > code")) {
    const language = languageOf(code);
    highlight(code, language);
    const pre = code.parentElement;
    pre.tabIndex = 0; // it scrolls sideways: reachable by keyboard, so the arrow keys can scroll it
    const block = document.createElement("div");
    block.className = "code-block";
    block.dataset.language = language ?? "text"; // shown by the stylesheet: no words added to the answer's text
    pre.replaceWith(block);
    // marked ends a block's text with a line break: the copy leaves it out, as a pasted snippet does not have one.
    const copy = copyButton(language ? `Copy ${language} code` : "Copy code", () => code.textContent.replace(/\n$/, ""));
    block.append(copy, pre);
  }
}

function languageOf(code) {
  for (const name of code.classList) {
    const match = LANGUAGE_CLASS.exec(name);
    if (match) return match[1];
  }
  return null;
}

function highlight(code, language) {
  const text = code.textContent;
  if (!language || !hljs.getLanguage(language) || text.length > MAX_HIGHLIGHTED_CHARS) return;
  const template = document.createElement("template"); // inert: nothing in it loads or runs
  template.innerHTML = hljs.highlight(text, { language, ignoreIllegals: true }).value;
  const onlyTokens = [...template.content.querySelectorAll("*")].every((node) => node.localName === "span"
    && [...node.attributes].every(({ name }) => name === "class")
    && [...node.classList].every((name) => TOKEN_CLASS.test(name)));
  if (onlyTokens && template.content.textContent === text) code.replaceChildren(template.content);
}
