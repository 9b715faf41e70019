/**
 * A button that copies text to the clipboard and says so for a moment ("Copied", or "Copy failed" where the page
 * has no clipboard: the Clipboard API needs a secure context, https or localhost).
 *
 * Its visible words come from the stylesheet (`.copy::after`) and its name from aria-label, so a button inside an
 * answer adds no text to the answer: selecting and copying the answer by hand, or reading its textContent, gives
 * the answer alone.
 *
 * @module copy-button
 */

// Long enough to be read at a glance, short enough that a second copy a moment later shows its own confirmation.
const CONFIRMATION_MS = 1500;

/**
 * @param {string} label what it copies, for assistive technology ("Copy message", "Copy python code")
 * @param {() => string} text read when it is clicked: an answer still growing is copied as it is then
 * @returns {HTMLButtonElement}
 */
export function copyButton(label, text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.setAttribute("aria-label", label);
  let reset = null;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      button.dataset.state = "copied";
    } catch {
      button.dataset.state = "failed";
    }
    clearTimeout(reset);
    reset = setTimeout(() => delete button.dataset.state, CONFIRMATION_MS);
  });
  return button;
}
