// The chat page: the conversation list at the side, the thread, the composer. It keeps one chat session in the
// address (#session=...), sends messages with relay-client.js and shows each answer as it grows, rendered as
// sanitised markdown. Which relay it talks to, where the token is kept and what an answer may render are decided in
// safety.js; following the thread as it grows in follow.js; code blocks in code-blocks.js; the conversation list in
// conversations.js, and what the user has spent under it in usage.js; the composer's images in attachments.js.
import { marked } from "./vendor/marked.esm.js";
import {
  cancelMessage, createSession, followAnswer, listMessages, listProviders, regenerate, streamChat, uploadAttachment,
} from "./relay-client.js";
import { ConversationList } from "./conversations.js";
import { UsageDisplay, resetTime } from "./usage.js";
import { chooseRelay, keepToken, pageSettings, recallToken, sanitizeAnswer } from "./safety.js";
import { appendReasoning, collapseReasoning, showReasoning } from "./thinking.js";
import { decorateCodeBlocks } from "./code-blocks.js";
import { copyButton } from "./copy-button.js";
import { ThreadFollower } from "./follow.js";
import { ImageTray, showImages } from "./attachments.js";

// About ten renders a second: smooth to the eye, and a long answer is not re-parsed on every token.
const RENDER_INTERVAL_MS = 100;
// A message of the user's longer than this shows folded, with "Show more": a pasted log should not fill the screen.
const FOLDED_LINES = 8;
const FOLDED_CHARACTERS = 800;

const MARKDOWN_SAMPLE = `How an answer looks, **rendered**:

\`\`\`python
def greet(name: str) -> str:
    return f"Hello, {name}!"  # highlighted, with a copy button
\`\`\`

| Provider | Streams |
|---|---|
| simulated | yes |

> A quote, with a bar at its side.`;

// The simulated provider's scenarios (devtools/simulated_provider.py): its model name says how it answers.
const EXAMPLES = [
  { title: "Markdown, echoed back", model: "sim:echo=1", prompt: MARKDOWN_SAMPLE,
    about: "Your message comes back word by word: code, a table and a quote, rendered." },
  { title: "A slow answer", model: "sim:first_token_ms=2000,tokens_per_second=5,tokens=80",
    prompt: "Take your time.", about: "Two seconds to the first word, then five a second: scroll up, or press Escape." },
  { title: "A failure mid-answer", model: "sim:fault=error_after,fault_at=12", prompt: "Start, then fail.",
    about: "The provider fails after twelve words: the error, its code, and Retry." },
  { title: "Rate limited", model: "sim:fault=http_429", prompt: "Too many requests?",
    about: "The provider answers 429 each time the relay asks." },
  { title: "A dropped connection", model: "sim:fault=drop_after,fault_at=10", prompt: "Hang up halfway.",
    about: "The provider's connection drops after ten words." },
];

const element = (id) => document.getElementById(id);
const relay = chooseRelay(new URLSearchParams(location.search).get("relay"), pageSettings());
const relayUrl = relay.url;

// "iam" when the relay is behind CloudFront with Origin Access Control (relay-client.js explains what changes).
const authMode = document.querySelector('meta[name="relay-auth"]')?.content || undefined;

// The session id may sit in the address: it is no credential (another user's session answers 404).
const sessionInAddress = () => new URLSearchParams(location.hash.slice(1)).get("session");
let chatSessionId = sessionInAddress();
let providers = [];
let turn = null; // the answer being streamed: {view, controller, messageId, stopRequested}
const queued = []; // messages sent while an answer was under way, oldest first: {content, images, view}
const follower = new ThreadFollower(element("thread"), element("messages"), element("jump"));
const conversations = new ConversationList({
  list: element("conversations"), more: element("more-conversations"), dialog: element("confirm-delete"),
  dialogName: element("confirm-delete-name"), confirm: element("confirm-delete-yes"),
  cancel: element("confirm-delete-cancel"),
}, { connection, current: () => chatSessionId, leaving: () => newChat(), notify });
const usage = new UsageDisplay({
  section: element("usage"), day: element("usage-day"), month: element("usage-month"),
  dayMeter: element("usage-day-meter"), monthMeter: element("usage-month-meter"),
});
const tray = new ImageTray({
  list: element("tray"), error: element("tray-error"), button: element("attach"), input: element("attach-input"),
  pasteTarget: element("content"), dropZone: element("chat"),
});

function connection() {
  const token = element("token").value.trim();
  keepToken(relayUrl, token);
  return { url: relayUrl, token: token || undefined, authMode };
}

class MessageView {
  /** @param {{after?: MessageView}} [place] placed right after that message (a queued message's answer) */
  constructor(role, status = "complete", { after } = {}) {
    this.role = role;
    this.text = "";
    this.lastRender = 0;
    this.timer = null;
    this.element = document.createElement("article");
    this.element.className = `message ${role}`;
    this.element.dataset.status = status;
    this.element.dataset.renders = "0";
    this.content = document.createElement("div");
    this.content.className = "content";
    this.meta = document.createElement("div");
    this.meta.className = "meta";
    this.actions = document.createElement("div");
    this.actions.className = "actions";
    this.actions.append(copyButton(role === "user" ? "Copy message" : "Copy answer", () => this.text));
    if (role === "ai") this.actions.append(regenerateButton(this));
    this.element.append(this.content, this.meta, this.actions);
    if (after) after.element.after(this.element);
    else element("messages").append(this.element);
  }

  set status(status) {
    this.element.dataset.status = status;
  }

  get messageId() {
    return this.element.dataset.messageId ?? null;
  }

  set messageId(messageId) {
    this.element.dataset.messageId = messageId;
  }

  /** The user's words as they typed them: text, never markup. */
  showPlain(text) {
    this.content.textContent = text;
    this.text = text;
    if (text.split("\n").length > FOLDED_LINES || text.length > FOLDED_CHARACTERS) this.fold();
  }

  append(text) {
    this.text += text;
    if (this.timer) return;
    const wait = Math.max(0, this.lastRender + RENDER_INTERVAL_MS - performance.now());
    this.timer = setTimeout(() => this.render(), wait);
  }

  render() {
    clearTimeout(this.timer);
    this.timer = null;
    this.lastRender = performance.now();
    this.content.replaceChildren(sanitizeAnswer(marked.parse(this.text)));
    decorateCodeBlocks(this.content);
    // A table wider than the answer scrolls sideways inside it: then it takes keyboard focus, so that the arrow keys
    // can scroll it. (Only then: a tab stop on every small table would be noise.)
    for (const table of this.content.querySelectorAll("table")) {
      if (table.scrollWidth > table.clientWidth) table.tabIndex = 0;
    }
    this.element.dataset.renders = String(Number(this.element.dataset.renders) + 1);
  }

  note(text) {
    this.meta.textContent = text;
  }

  /** An error that stands out: what happened, its code, and a way to try again (none for a spent budget: it would
   * only be refused again until the budget starts again, which it says when). */
  showFailure({ code, message, retryAfter }, retry) {
    const failure = document.createElement("div");
    failure.className = "failure";
    const what = document.createElement("p");
    what.textContent = message || "The answer failed.";
    if (code === "budget_exceeded") {
      const resets = retryAfter != null ? ` (${resetTime(new Date(Date.now() + retryAfter * 1000))})` : "";
      what.textContent = `Your token budget is used up: ${message}${resets}.`;
      retry = null;
    }
    const codeName = document.createElement("code");
    codeName.textContent = code;
    failure.append(what, codeName);
    if (retry) {
      const again = document.createElement("button");
      again.type = "button";
      again.className = "retry";
      again.textContent = "Retry";
      again.addEventListener("click", retry);
      failure.append(again);
    }
    this.meta.replaceChildren(failure);
  }

  markSimulated() {
    const label = document.createElement("span");
    label.className = "badge";
    label.textContent = "simulated";
    label.title = "Answered by the simulated provider, not a model";
    this.actions.prepend(label);
  }

  fold(show = "Show more", hide = "Show less") {
    this.element.classList.add("folded");
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "fold";
    toggle.textContent = show;
    toggle.setAttribute("aria-expanded", "false");
    toggle.addEventListener("click", () => {
      const open = this.element.classList.toggle("unfolded");
      toggle.textContent = open ? hide : show;
      toggle.setAttribute("aria-expanded", String(open));
    });
    this.actions.prepend(toggle);
  }

  /** An answer a regenerate replaced: kept (the relay keeps it too, marked supersededBy), folded to one line. */
  supersede() {
    if (this.element.classList.contains("superseded")) return;
    this.element.classList.add("superseded");
    this.fold("Show the earlier answer", "Hide the earlier answer");
  }
}

/** Regenerate, under an answer: CSS shows it under the last one only, and not while an answer is under way. */
function regenerateButton(view) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "regenerate";
  button.setAttribute("aria-label", "Regenerate the answer");
  button.addEventListener("click", () => regenerateAnswer(view));
  return button;
}

/** How an answer ended, under it: the same for one just streamed and one read back from the store. */
function showOutcome(view, { status, error, ttftMs, tokensPerSecond }, retry) {
  view.status = status;
  if (error && error.code !== "cancelled") {
    view.showFailure(error, retry);
    return;
  }
  const facts = [error && "Stopped.", !error && status === "interrupted" && "Interrupted.",
    ttftMs != null && `first token ${Math.round(ttftMs)} ms`,
    tokensPerSecond != null && `${Math.round(tokensPerSecond)} tokens/s`];
  view.note(facts.filter(Boolean).join(" · "));
}

/** The callbacks of relay-client's streaming calls for the answer in `current`; `started` is called once the relay
 * has accepted the turn (its messages are stored). */
function answerCallbacks(current, retry, started) {
  const { view } = current;
  return {
    onStart: ({ messageId }) => {
      view.messageId = messageId;
      current.messageId = messageId;
      started?.();
      if (current.stopRequested) stop(current);
    },
    onReasoning: (text) => {
      view.status = "streaming";
      appendReasoning(view.element, text);
    },
    onToken: (text) => {
      view.status = "streaming";
      collapseReasoning(view.element);
      view.append(text);
    },
    onDone: (done) => {
      collapseReasoning(view.element);
      showOutcome(view, { status: "complete", ...done }, retry);
    },
    onError: (error) => {
      collapseReasoning(view.element);
      showOutcome(view, { status: error.code === "cancelled" ? "interrupted" : "error", error }, retry);
    },
  };
}

/**
 * A message from the composer (or an example, or Retry), with the images it carries: sent now, or queued behind
 * the answer under way.
 *
 * @param {string} content
 * @param {import("./attachments.js").PendingImage[]} [images]
 */
function submit(content, images = []) {
  const view = new MessageView("user");
  view.showPlain(content);
  showImages(view.element, images.map(({ preview, name }) => ({ src: preview, alt: name })));
  follower.toLatest();
  if (turn) {
    view.status = "queued";
    view.note("Queued: sent when the answer above ends.");
    queued.push({ content, images, view });
    return;
  }
  send(content, view, images);
}

async function send(content, userView, images = []) {
  userView.status = "complete";
  userView.note("");
  const view = new MessageView("ai", "pending", { after: userView });
  if (element("provider").value === "simulated") view.markSimulated();
  const retry = () => submit(content, images);
  await run(view, async (current) => {
    let created = null;
    if (!chatSessionId) {
      const { provider, model } = Object.fromEntries(new FormData(element("setup")));
      created = await createSession({ ...connection(), provider, model });
      if (current.controller.signal.aborted) return { status: "aborted" }; // "New chat" meanwhile: not this one
      chatSessionId = created;
      history.replaceState(null, "", `#session=${chatSessionId}`);
    }
    // Each image straight to the relay's bucket, then the message names them (a refusal ends here, as an error).
    const attachments = await Promise.all(images.map(async ({ file }) => (await uploadAttachment({
      ...connection(), chatSessionId, file, signal: current.controller.signal,
    })).attachmentId));
    // A new session is listed (and titled by this first message) once the relay has stored the message.
    const listed = created && (() => refreshConversations());
    return streamChat({
      ...connection(), chatSessionId, content, attachments, signal: current.controller.signal,
      ...answerCallbacks(current, retry, listed),
    });
  }, retry);
}

/** Answers the last message again: the new answer goes under `replaced`, which folds away once the relay has it. */
function regenerateAnswer(replaced) {
  if (turn || !chatSessionId) return;
  const view = new MessageView("ai", "pending", { after: replaced });
  if (element("provider").value === "simulated") view.markSimulated();
  follower.toLatest();
  const retry = () => regenerateAnswer(view);
  run(view, (current) => regenerate({
    ...connection(), chatSessionId, signal: current.controller.signal,
    ...answerCallbacks(current, retry, () => replaced.supersede()),
  }), retry);
}

async function run(view, stream, retry) {
  const current = { view, controller: new AbortController(), messageId: view.messageId, stopRequested: false };
  turn = current;
  setBusy(true);
  try {
    const result = await stream(current);
    if (result.status === "aborted") view.status = "interrupted";
  } catch (error) {
    showOutcome(view, { status: "error", error: { code: error.code ?? "failed", message: error.message } }, retry);
  } finally {
    view.render();
    if (turn === current) { // else "New chat" or another conversation has taken over
      turn = null;
      setBusy(false);
      refreshConversations(); // its last activity moved it to the top, and a model may have titled it meanwhile
      refreshUsage();
      const next = queued.shift();
      if (next) send(next.content, next.view, next.images);
    }
  }
}

async function stop(current = turn) {
  if (!current) return;
  if (!current.messageId) {
    current.stopRequested = true; // the answer has no id yet: stopped as soon as it has one
    return;
  }
  if (current === turn) element("stop").disabled = true;
  try {
    await cancelMessage({ ...connection(), chatSessionId, messageId: current.messageId });
  } catch (error) {
    if (error.code !== "not_streaming") notify(`Could not stop: ${error.message}`);
  }
}

async function loadHistory() {
  const loading = chatSessionId;
  element("messages").replaceChildren();
  if (!loading) return;
  // The session's own provider and model (GET /sessions), for the picker: the ones its turns use. (Not found, it is
  // not the user's, or is older than the list reads: GET …/messages says which, and the picker stays as it is.)
  const [messages, session] = await Promise.all([
    listMessages({ ...connection(), chatSessionId: loading }),
    conversations.summaryOf(loading).catch(() => null),
  ]);
  if (loading !== chatSessionId) return; // another conversation was opened meanwhile
  if (session) showModel(session.provider, session.model);
  let asked = null;
  for (const message of messages) {
    if (message.role === "user") {
      // Retry sends the text again; a message's images stay with it in the store, and go again with a regenerate.
      asked = message.attachments?.length ? null : message.content;
      const view = new MessageView("user");
      view.showPlain(message.content);
      const shown = (message.attachments ?? []).filter(({ url }) => url); // a relay without a bucket gives none
      showImages(view.element, shown.map(({ url }, index) => ({ src: url, alt: `Image ${index + 1}` })));
      continue;
    }
    const content = asked;
    const retry = content === null ? null : () => submit(content);
    const view = new MessageView("ai", message.status);
    if ((message.metadata?.provider ?? session?.provider) === "simulated") view.markSimulated();
    view.messageId = message.messageId;
    view.text = message.content;
    view.render();
    showReasoning(view.element, message);
    if (message.metadata?.supersededBy) view.supersede();
    if (message.status === "pending" || message.status === "streaming") {
      // Still being generated (another tab, or a reload mid-answer): follow it from what is stored.
      run(view, (current) => followAnswer({
        // Offsets count code points, as the relay does (a string's length counts UTF-16 units).
        ...connection(), chatSessionId, messageId: message.messageId, offset: Array.from(message.content).length,
        reasoningOffset: Array.from(message.reasoning ?? "").length,
        signal: current.controller.signal, ...answerCallbacks(current, retry),
      }), retry);
    } else {
      showOutcome(view, { ...message.metadata, status: message.status }, retry);
    }
  }
  follower.toLatest();
}

async function loadProviders() {
  providers = await listProviders(connection());
  const select = element("provider");
  select.replaceChildren(...providers.map(({ name }) => new Option(name, name)));
  const preferred = providers.find(({ name }) => name === "simulated") ?? providers[0];
  if (preferred) select.value = preferred.name;
  offerModels();
  showExamples(providers.some(({ name }) => name === "simulated"));
}

function offerModels(model) {
  const provider = providers.find(({ name }) => name === element("provider").value);
  const models = provider?.models ?? [];
  element("models").replaceChildren(...models.map((name) => new Option(name)));
  element("model").value = model ?? models[0] ?? "";
}

/** Shows a provider and model in the picker (without starting a new chat, as a change by the user does). */
function showModel(provider, model) {
  const select = element("provider");
  if (![...select.options].some((option) => option.value === provider)) select.append(new Option(provider, provider));
  select.value = provider;
  offerModels(model);
}

function showExamples(offered) {
  element("examples").hidden = !offered;
  element("example-list").replaceChildren(...EXAMPLES.map((example) => {
    const button = document.createElement("button");
    button.type = "button";
    const title = document.createElement("strong");
    title.textContent = example.title;
    const model = document.createElement("code");
    model.textContent = example.model;
    const about = document.createElement("span");
    about.textContent = example.about;
    button.append(title, model, about);
    button.addEventListener("click", () => {
      newChat();
      showModel("simulated", example.model);
      submit(example.prompt);
    });
    const item = document.createElement("li");
    item.append(button);
    return item;
  }));
}

async function refreshConversations() {
  try {
    await conversations.refresh();
  } catch {
    // the list is a convenience: the conversation itself goes on without it
  }
}

async function refreshUsage() {
  try {
    await usage.refresh(connection());
  } catch {
    // as the list: a convenience (a relay without the route, or a moment's failure, leaves the last one shown)
  }
}

/** Leaves the conversation on screen: its answer stops being read (the relay still finishes and stores it). */
function leaveConversation() {
  turn?.controller.abort();
  turn = null;
  setBusy(false);
  queued.length = 0;
  element("messages").replaceChildren();
  notify("");
}

function newChat() {
  leaveConversation();
  chatSessionId = null;
  history.replaceState(null, "", location.pathname + location.search);
  conversations.show(); // none marked now
  setDrawer(false);
  element("content").focus();
}

/** Opens another conversation (from the list, or a link): its history, and its model in the picker. */
function openConversation(id) {
  leaveConversation();
  chatSessionId = id;
  conversations.show(); // marked at once; loadHistory reads the list again if it is not in it
  setDrawer(false);
  attempt(loadHistory);
}

function setBusy(busy) {
  element("stop").disabled = !busy;
  element("messages").setAttribute("aria-busy", String(busy)); // one announcement per answer, not one per render
}

/** The conversation list is a drawer on a phone: open over the thread, closed by Escape or a tap beside it. */
function setDrawer(open) {
  document.body.dataset.drawer = open ? "open" : "closed";
  element("menu").setAttribute("aria-expanded", String(open));
  element("backdrop").hidden = !open;
  if (open) element("new-chat").focus();
}

function notify(message) {
  const notice = element("notice");
  notice.textContent = message;
  notice.hidden = !message;
}

async function attempt(action) {
  notify("");
  try {
    await action();
  } catch (error) {
    notify(error.message ? `${error.message}${error.code ? ` (${error.code})` : ""}` : String(error));
  }
}

element("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = element("content").value;
  if (!content.trim() && !tray.images.length) return;
  element("content").value = "";
  submit(content.trim() ? content : "", await tray.take());
});
element("content").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    element("composer").requestSubmit();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented) return;
  if (element("confirm-delete").open) return; // the dialog's own Escape cancels it, and nothing else
  if (document.body.dataset.drawer === "open") {
    setDrawer(false);
    element("menu").focus();
  } else if (turn) {
    attempt(() => stop());
  }
});
element("stop").addEventListener("click", () => attempt(() => stop()));
element("new-chat").addEventListener("click", newChat);
element("menu").addEventListener("click", () => setDrawer(document.body.dataset.drawer !== "open"));
element("backdrop").addEventListener("click", () => setDrawer(false));
element("provider").addEventListener("change", () => { offerModels(); newChat(); });
element("model").addEventListener("change", newChat); // a session keeps its model: another model is another chat
window.addEventListener("hashchange", () => {
  const id = sessionInAddress();
  if (id !== chatSessionId) openConversation(id);
});
// A host whose Content-Security-Policy leaves the relay out of connect-src blocks every request: say so.
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "a resource";
  notify(`The page's Content-Security-Policy blocked ${blocked} (${event.effectiveDirective}).`);
});
setDrawer(false);
if (relay.refused) {
  notify(relay.refused);
  for (const control of document.querySelectorAll("input, select, textarea, button")) control.disabled = true;
} else {
  element("token").value = recallToken(relayUrl);
  element("content").focus();
  attempt(async () => {
    await loadProviders();
    refreshUsage();
    // With a conversation in the address, loading it reads the list too (for its provider and model)
    await (chatSessionId ? loadHistory() : refreshConversations());
  });
}
