// The chat page: picks a provider and model, keeps one chat session in the address (#session=...), sends
// messages with relay-client.js and shows each answer as it grows, rendered as sanitised markdown. Which relay it
// talks to, where the token is kept and what an answer may render are decided in safety.js.
import { marked } from "./vendor/marked.esm.js";
import {
  cancelMessage, createSession, followAnswer, listMessages, listProviders, streamChat,
} from "./relay-client.js";
import { chooseRelay, keepToken, pageSettings, recallToken, sanitizeAnswer } from "./safety.js";
import { appendReasoning, collapseReasoning, showReasoning } from "./thinking.js";

// About ten renders a second: smooth to the eye, and a long answer is not re-parsed on every token.
const RENDER_INTERVAL_MS = 100;

const element = (id) => document.getElementById(id);
const relay = chooseRelay(new URLSearchParams(location.search).get("relay"), pageSettings());
const relayUrl = relay.url;

// "iam" when the relay is behind CloudFront with Origin Access Control (relay-client.js explains what changes).
const authMode = document.querySelector('meta[name="relay-auth"]')?.content || undefined;

// The session id may sit in the address: it is no credential (another user's session answers 404).
let chatSessionId = new URLSearchParams(location.hash.slice(1)).get("session");
let providers = [];
let running = null; // the answer being streamed: {view, controller, messageId, stopRequested}

function connection() {
  const token = element("token").value.trim();
  keepToken(relayUrl, token);
  return { url: relayUrl, token: token || undefined, authMode };
}

class MessageView {
  constructor(role, status = "complete") {
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
    this.element.append(this.content, this.meta);
    element("messages").append(this.element);
  }

  set status(status) {
    this.element.dataset.status = status;
  }

  set messageId(messageId) {
    this.element.dataset.messageId = messageId;
  }

  showPlain(text) {
    this.content.textContent = text;
    this.text = text;
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
    this.element.dataset.renders = String(Number(this.element.dataset.renders) + 1);
    this.element.scrollIntoView({ block: "end" });
  }

  note(text) {
    this.meta.textContent = text;
  }
}

function answerCallbacks(view) {
  return {
    onStart: ({ messageId }) => {
      view.messageId = messageId;
      running.messageId = messageId;
      if (running.stopRequested) stop();
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
      view.status = "complete";
      collapseReasoning(view.element);
      const facts = [done.ttftMs != null && `first token ${Math.round(done.ttftMs)} ms`,
        done.tokensPerSecond != null && `${Math.round(done.tokensPerSecond)} tokens/s`];
      view.note(facts.filter(Boolean).join(" · "));
    },
    onError: (error) => {
      collapseReasoning(view.element);
      view.status = error.code === "cancelled" ? "interrupted" : "error";
      view.note(error.code === "cancelled" ? "Stopped." : `Error: ${error.message} (${error.code})`);
    },
  };
}

async function send(content) {
  if (!chatSessionId) {
    const { provider, model } = Object.fromEntries(new FormData(element("setup")));
    chatSessionId = await createSession({ ...connection(), provider, model });
    history.replaceState(null, "", `#session=${chatSessionId}`);
  }
  new MessageView("user").showPlain(content);
  const view = new MessageView("ai", "pending");
  await run(view, (signal) => streamChat({
    ...connection(), chatSessionId, content, signal, ...answerCallbacks(view),
  }));
}

async function run(view, stream) {
  running = { view, controller: new AbortController(), messageId: view.element.dataset.messageId ?? null };
  setBusy(true);
  try {
    const result = await stream(running.controller.signal);
    if (result.status === "aborted") view.status = "interrupted";
  } finally {
    view.render();
    running = null;
    setBusy(false);
  }
}

async function stop() {
  if (!running) return;
  if (!running.messageId) {
    running.stopRequested = true; // the answer has no id yet: stopped as soon as it has one
    return;
  }
  element("stop").disabled = true;
  try {
    await cancelMessage({ ...connection(), chatSessionId, messageId: running.messageId });
  } catch (error) {
    if (error.code !== "not_streaming") notify(`Could not stop: ${error.message}`);
  }
}

async function loadHistory() {
  element("messages").replaceChildren();
  if (!chatSessionId) return;
  const messages = await listMessages({ ...connection(), chatSessionId });
  for (const message of messages) {
    if (message.role === "user") {
      new MessageView("user").showPlain(message.content);
      continue;
    }
    const view = new MessageView("ai", message.status);
    view.messageId = message.messageId;
    view.text = message.content;
    view.render();
    showReasoning(view.element, message);
    if (message.error) view.note(`Error: ${message.error.message} (${message.error.code})`);
    if (message.status === "pending" || message.status === "streaming") {
      // Still being generated (another tab, or a reload mid-answer): follow it from what is stored.
      run(view, (signal) => followAnswer({
        // Offsets count code points, as the relay does (a string's length counts UTF-16 units).
        ...connection(), chatSessionId, messageId: message.messageId, offset: Array.from(message.content).length,
        reasoningOffset: Array.from(message.reasoning ?? "").length, signal,
        ...answerCallbacks(view),
      }));
    }
  }
}

async function loadProviders() {
  providers = await listProviders(connection());
  const select = element("provider");
  select.replaceChildren(...providers.map(({ name }) => new Option(name, name)));
  const preferred = providers.find(({ name }) => name === "simulated") ?? providers[0];
  if (preferred) select.value = preferred.name;
  offerModels();
}

function offerModels() {
  const provider = providers.find(({ name }) => name === element("provider").value);
  const models = provider?.models ?? [];
  element("models").replaceChildren(...models.map((model) => new Option(model)));
  element("model").value = models[0] ?? "";
}

function newChat() {
  chatSessionId = null;
  history.replaceState(null, "", location.pathname + location.search);
  element("messages").replaceChildren();
}

function setBusy(busy) {
  element("send").disabled = busy;
  element("stop").disabled = !busy;
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

element("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const content = element("content").value;
  if (!content.trim() || running) return;
  element("content").value = "";
  attempt(() => send(content));
});
element("content").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    element("composer").requestSubmit();
  }
});
element("stop").addEventListener("click", () => attempt(stop));
element("new-chat").addEventListener("click", newChat);
element("provider").addEventListener("change", () => { offerModels(); newChat(); });
element("model").addEventListener("change", newChat); // a session keeps its model: another model is another chat
// A host whose Content-Security-Policy leaves the relay out of connect-src blocks every request: say so.
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "a resource";
  notify(`The page's Content-Security-Policy blocked ${blocked} (${event.effectiveDirective}).`);
});
if (relay.refused) {
  notify(relay.refused);
  for (const control of document.querySelectorAll("input, select, textarea, button")) control.disabled = true;
} else {
  element("token").value = recallToken(relayUrl);
  attempt(async () => {
    await loadProviders();
    await loadHistory();
  });
}
