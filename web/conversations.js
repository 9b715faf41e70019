/**
 * The conversation list at the side: the user's own sessions, most recently active first (GET /sessions), a page at
 * a time ("Load more" follows the relay's cursor), the open one marked; each renamed in place (PATCH, its title) or
 * deleted once the user confirms (DELETE). A title is user text (typed, or taken from a first message), so it is
 * only ever set as text (textContent, an attribute's value), never parsed as markup.
 *
 * @module conversations
 */
import { deleteSession, listSessions, updateSession } from "./relay-client.js";

const PAGE = 20; // the relay's default page: a screenful of titles
const MAX_PAGE = 100; // the relay's largest page
// Pages of 100 read beyond the first to find the open conversation, so that it shows marked and its model is known;
// past 500 more recent ones a link to it still opens it, unmarked.
const SEARCH_PAGES = 5;
const MAX_TITLE_LENGTH = 200; // the relay's limit (config.MAX_TITLE_CHARS)
const ICONS = {
  rename: "M4 14.5V16h1.5l8.4-8.4-1.5-1.5L4 14.5zm11.7-8.2a1 1 0 0 0 0-1.4l-.6-.6a1 1 0 0 0-1.4 0l-.9.9 2 2 .9-.9z",
  delete: "M6 6h8l-.7 10H6.7L6 6zm2-2h4l.5 1H15v1.3H5V5h2.5L8 4z",
};

/**
 * @typedef {object} PageHooks
 * @property {() => object} connection the relay's URL, token and auth mode, for relay-client.js
 * @property {() => string|null} current the open conversation's id
 * @property {(chatSessionId: string) => void} leaving called before the open conversation is deleted
 * @property {(message: string) => void} notify shows a failure to the user
 */

export class ConversationList {
  /**
   * @param {{list: HTMLUListElement, more: HTMLButtonElement, dialog: HTMLDialogElement, dialogName: HTMLElement,
   *   confirm: HTMLButtonElement, cancel: HTMLButtonElement}} elements
   * @param {PageHooks} hooks
   */
  constructor(elements, hooks) {
    this.elements = elements;
    this.hooks = hooks;
    /** @type {import("./relay-client.js").SessionSummary[]} */
    this.sessions = [];
    this.nextCursor = null;
    this.loads = 0; // the latest load's number: an earlier one that answers later is not shown over it
    this.erased = new Set(); // deleted here: the relay's list may still hold them for a second (its index lags)
    this.editing = false; // a title is being renamed: the list is not drawn again under the user's typing
    elements.more.addEventListener("click", () => this.loadMore());
    elements.confirm.addEventListener("click", () => elements.dialog.close("delete"));
    elements.cancel.addEventListener("click", () => elements.dialog.close("cancel"));
  }

  /** The open conversation's summary (its provider and model), from the list, reading further pages if needed. */
  async summaryOf(chatSessionId) {
    const known = () => this.sessions.find((session) => session.chatSessionId === chatSessionId);
    if (!known()) await this.refresh();
    return known() ?? null;
  }

  /** Reads the list again from the top, as many as are shown (and on until the open conversation is among them). */
  async refresh() {
    const load = ++this.loads;
    const connection = this.hooks.connection();
    const current = this.hooks.current();
    let page = await listSessions({ ...connection, limit: Math.min(MAX_PAGE, Math.max(PAGE, this.sessions.length)) });
    const sessions = [...page.sessions];
    const found = () => !current || sessions.some((session) => session.chatSessionId === current);
    for (let more = 0; !found() && page.nextCursor && more < SEARCH_PAGES; more += 1) {
      page = await listSessions({ ...connection, limit: MAX_PAGE, cursor: page.nextCursor });
      sessions.push(...page.sessions);
    }
    if (load !== this.loads) return;
    this.sessions = sessions.filter((session) => !this.erased.has(session.chatSessionId));
    this.nextCursor = page.nextCursor;
    this.show();
  }

  async loadMore() {
    if (!this.nextCursor) return;
    const load = ++this.loads;
    let page;
    try {
      page = await listSessions({ ...this.hooks.connection(), limit: PAGE, cursor: this.nextCursor });
    } catch (error) {
      this.hooks.notify(`Could not load more conversations: ${error.message}`);
      return;
    }
    if (load !== this.loads) return;
    const shown = new Set(this.sessions.map((session) => session.chatSessionId));
    const added = page.sessions.filter((session) => !shown.has(session.chatSessionId)
      && !this.erased.has(session.chatSessionId));
    this.sessions.push(...added);
    this.nextCursor = page.nextCursor;
    this.show();
    // The button may be gone (the last page): the reader goes on from the first conversation it brought.
    if (added.length) this.linkOf(added[0].chatSessionId)?.focus();
  }

  show() {
    if (this.editing) return;
    const current = this.hooks.current();
    this.elements.list.replaceChildren(...this.sessions.map((session) => this.item(session, current)));
    this.elements.more.hidden = !this.nextCursor;
  }

  item(session, current) {
    const { chatSessionId, provider, model, updatedAt } = session;
    const title = session.title || "Untitled chat";
    const link = document.createElement("a");
    link.href = `#session=${encodeURIComponent(chatSessionId)}`;
    link.textContent = title;
    link.title = `${provider} · ${model}, ${new Date(updatedAt).toLocaleString()}`;
    if (chatSessionId === current) link.setAttribute("aria-current", "page");
    const item = document.createElement("li");
    item.className = "conversation";
    item.dataset.sessionId = chatSessionId;
    const rename = toolButton("rename", `Rename “${title}”`, () => this.rename(item, session));
    const remove = toolButton("delete", `Delete “${title}”`, () => this.remove(session));
    const tools = document.createElement("span");
    tools.className = "tools";
    tools.append(rename, remove);
    item.append(link, tools);
    return item;
  }

  linkOf(chatSessionId) {
    return [...this.elements.list.querySelectorAll("li")]
      .find((item) => item.dataset.sessionId === chatSessionId)?.querySelector("a") ?? null;
  }

  /** The title becomes a field in place: Enter (or leaving it) saves, Escape leaves it as it was. */
  rename(item, session) {
    const field = document.createElement("input");
    field.className = "rename";
    field.value = session.title ?? "";
    field.maxLength = MAX_TITLE_LENGTH;
    field.setAttribute("aria-label", "Title of the conversation");
    item.replaceChildren(field);
    this.editing = true;
    field.focus();
    field.select();
    let ended = false;
    const end = async (save) => {
      if (ended) return;
      ended = true;
      const title = field.value.trim();
      field.readOnly = true;
      if (save && title && title !== session.title) {
        try {
          const { chatSessionId } = session;
          const changed = await updateSession({ ...this.hooks.connection(), chatSessionId, title });
          // (the list may have been read again meanwhile: its own copy of the session is the one shown)
          for (const shown of [session, ...this.sessions.filter((other) => other.chatSessionId === chatSessionId)]) {
            shown.title = changed.title;
          }
        } catch (error) {
          this.hooks.notify(`Could not rename the conversation: ${error.message}`);
        }
      }
      this.editing = false;
      this.show();
      this.linkOf(session.chatSessionId)?.focus();
    };
    field.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        end(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation(); // not the page's Escape: that stops an answer, or closes the drawer
        end(false);
      }
    });
    field.addEventListener("blur", () => end(true));
  }

  async remove(session) {
    if (!(await this.confirm(session.title || "Untitled chat"))) return;
    const { chatSessionId } = session;
    if (chatSessionId === this.hooks.current()) this.hooks.leaving(chatSessionId);
    try {
      await deleteSession({ ...this.hooks.connection(), chatSessionId }); // false: gone already, as wanted
    } catch (error) {
      this.hooks.notify(`Could not delete the conversation: ${error.message}`);
      return;
    }
    this.erased.add(chatSessionId);
    this.sessions = this.sessions.filter((other) => other.chatSessionId !== chatSessionId);
    this.show();
  }

  /** Asks in a modal dialog (focus starts on Cancel); true when the user chose Delete. */
  confirm(title) {
    const { dialog, dialogName } = this.elements;
    dialogName.textContent = title;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
    });
  }
}

function toolButton(kind, label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = kind;
  button.setAttribute("aria-label", label);
  button.title = kind === "rename" ? "Rename" : "Delete";
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 20 20");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[kind]);
  svg.append(path);
  button.append(svg);
  button.addEventListener("click", action);
  return button;
}
