/**
 * A small client for the chat relay: send a message and read the answer as it streams, with no dependencies.
 * It runs in browsers and in Node 18+ (it needs `fetch`, `TextDecoder` and streams). Copy it into your frontend.
 *
 * The wire format is server-sent events over a `fetch` POST (EventSource cannot POST):
 * `start` {messageId, userMessageId}, then `token` {text} with the character offset as the event id (and, from a
 * model that reasons, `reasoning` {text} before and between them, its id "<text offset>:<reasoning offset>"), then
 * `done` {...} or `error` {code, message}. After a dropped connection the answer is resumed from the last offsets
 * received (`Last-Event-ID`), or, if it dropped before `start`, the same request is sent again with the same
 * `clientMessageId`, which the relay joins to the first one instead of asking the provider twice.
 *
 * Behind CloudFront with Origin Access Control (the relay's AuthMode `iam`), pass `authMode: "iam"` to every call.
 * CloudFront then signs each request for the private function URL itself, so it takes the `Authorization` header
 * over, and it can sign a body only by the hash the browser declares (Lambda takes no unsigned payload). So every
 * request with a body carries `x-amz-content-sha256`, the hex SHA-256 of the exact bytes sent (made with Web Crypto,
 * which browsers offer on https and localhost pages only), and the token travels as `X-User-Authorization: Bearer …`
 * instead. GET requests (listing, resuming) need no hash.
 *
 * Images: `uploadAttachment` sends one image straight to the relay's bucket (a presigned PUT the relay hands out,
 * so nothing big goes through the relay) and answers its id; `streamChat` takes such ids as `attachments`.
 *
 * Conversations: `listSessions` pages through the user's own, most recently active first; `updateSession` renames
 * or reconfigures one; `deleteSession` and `deleteAllSessions` erase; `regenerate` streams a new answer to the last
 * message; `getUsage` says what the user has spent today and this month, and their budgets.
 *
 * @module relay-client
 */

/** An error the relay reported (`code` as in its JSON errors and `error` events), or a lost connection. */
export class RelayError extends Error {
  /**
   * @param {string} code e.g. "provider_error", "rate_limited", "budget_exceeded", "cancelled", "connection_lost"
   * @param {string} message
   * @param {number} [status] the HTTP status, when the request itself was refused
   * @param {number} [retryAfter] seconds until a refusal stops (its Retry-After: a 429's limit or budget resets),
   *   when the relay said and the browser lets the page read it (same origin, or the header exposed by CORS)
   */
  constructor(code, message, status, retryAfter) {
    super(message);
    this.name = "RelayError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * @typedef {object} DoneInfo
 * @property {string} messageId
 * @property {string|null} finishReason
 * @property {{inputTokens: number|null, outputTokens: number|null}} usage
 * @property {number|null} ttftMs
 * @property {number|null} tokensPerSecond
 */

/**
 * @typedef {object} StreamResult
 * @property {"complete"|"error"|"aborted"} status
 * @property {string} text everything received
 * @property {string} reasoning the model's reasoning received, "" when it streamed none
 * @property {string|null} messageId the answer's id, once the relay has sent it
 */

/**
 * Send `content` to a chat session and receive the answer as it is generated.
 *
 * @param {object} options
 * @param {string} options.url the relay's base URL (the function URL), e.g. "https://abc.lambda-url.eu-west-1.on.aws"
 * @param {string} [options.token] a bearer token, when the relay checks JWTs
 * @param {"jwt"|"iam"} [options.authMode="jwt"] "iam" when the relay is reached through CloudFront with Origin
 *   Access Control: bodies are hashed and the token goes in `X-User-Authorization` (see the module's notes)
 * @param {string} options.chatSessionId from `createSession`
 * @param {string} options.content the user's message ("" with `attachments`: images alone)
 * @param {string[]} [options.attachments] ids of images from `uploadAttachment`, at most 4 (sent before the text)
 * @param {string} [options.clientMessageId] an idempotency key; one is made up when absent
 * @param {(ids: {messageId: string, userMessageId: string}) => void} [options.onStart] the answer has an id
 * @param {(text: string, offset: number) => void} [options.onToken] each piece of text, and the length so far
 *   in Unicode code points (the unit of the relay's offsets and of `Last-Event-ID`)
 * @param {(text: string, offset: number) => void} [options.onReasoning] each piece of the model's reasoning (it
 *   comes before the answer's text), and the reasoning's length so far in code points
 * @param {(done: DoneInfo) => void} [options.onDone] the answer is complete and stored
 * @param {(error: RelayError) => void} [options.onError] the request was refused, or the answer ended in an error
 *   (code "cancelled" after `cancelMessage`); what was received before it is stored with the answer
 * @param {AbortSignal} [options.signal] stops reading (the relay still finishes and stores the answer: to stop
 *   the answer itself, call `cancelMessage`)
 * @param {number} [options.maxReconnects=5] how often a dropped connection is picked up again
 * @param {typeof fetch} [options.fetch] a fetch of your own (tests, instrumentation)
 * @returns {Promise<StreamResult>} settles when the answer has ended, whichever way; it does not reject
 */
export async function streamChat(options) {
  const { chatSessionId, content, attachments } = options;
  if (!attachments?.length) return postChat(options, { chatSessionId, content });
  // Images alone go without content: the relay takes no empty text.
  return postChat(options, content ? { chatSessionId, content, attachments } : { chatSessionId, attachments });
}

/**
 * @typedef {object} UploadedAttachment
 * @property {string} attachmentId name it in `streamChat`'s `attachments`
 * @property {string} mediaType
 * @property {number} size bytes
 */

/**
 * Upload one image for a message of the session: the relay hands out a short-lived URL (5 minutes) signed for this
 * image's type and exact size, and the image goes straight to the relay's bucket (S3) with a PUT, never through the
 * relay. Refused with a RelayError: a type other than PNG, JPEG, WebP or GIF or an image over 3,750,000 bytes
 * (422), a session that is not the user's (404 "session_not_found"), a relay with no bucket (422
 * "attachments_not_configured"), or the bucket's own refusal (code "upload_failed", with its HTTP status). The
 * relay checks the bytes when the message is sent: a file that is no image, whatever its name, is refused then
 * (422 "attachment_not_an_image").
 *
 * @param {object} options
 * @param {string} options.url
 * @param {string} [options.token]
 * @param {"jwt"|"iam"} [options.authMode="jwt"]
 * @param {string} options.chatSessionId
 * @param {Blob} options.file the image (a `File` from an input, a paste or a drop is a Blob); its `type` is sent as
 *   the media type
 * @param {AbortSignal} [options.signal]
 * @param {typeof fetch} [options.fetch]
 * @returns {Promise<UploadedAttachment>}
 */
export async function uploadAttachment(options) {
  const { file } = options;
  const upload = await json(await send(options, "POST", `${sessionPath(options.chatSessionId)}/attachments`,
    { mediaType: file.type, size: file.size }));
  // Straight to the bucket: only the headers the URL was signed with, never the user's token.
  const put = await (options.fetch ?? fetch)(upload.uploadUrl,
    { method: "PUT", headers: upload.uploadHeaders ?? {}, body: file, signal: options.signal });
  if (!put.ok) {
    throw new RelayError("upload_failed", `the bucket refused the image (HTTP ${put.status})`, put.status);
  }
  return { attachmentId: upload.attachmentId, mediaType: file.type, size: file.size };
}

/**
 * Answer the session's last message again, streaming the new answer as `streamChat` does (same callbacks and
 * result). The answer it replaces stays in the history, marked `metadata.supersededBy` with the new answer's id.
 * The relay refuses it (onError, status 409) with "answer_in_progress" while the last answer is still being
 * generated, and with "nothing_to_regenerate" in a session with no message.
 *
 * @param {object} options the options of `streamChat`, without `content`
 * @param {string} options.url
 * @param {string} [options.token]
 * @param {"jwt"|"iam"} [options.authMode="jwt"]
 * @param {string} options.chatSessionId
 * @param {string} [options.clientMessageId] an idempotency key; one is made up when absent
 * @param {(ids: {messageId: string, userMessageId: string}) => void} [options.onStart] `userMessageId` is the
 *   message answered again
 * @param {(text: string, offset: number) => void} [options.onToken]
 * @param {(done: DoneInfo) => void} [options.onDone]
 * @param {(error: RelayError) => void} [options.onError]
 * @param {AbortSignal} [options.signal]
 * @param {number} [options.maxReconnects=5]
 * @param {typeof fetch} [options.fetch]
 * @returns {Promise<StreamResult>}
 */
export async function regenerate(options) {
  return postChat(options, { chatSessionId: options.chatSessionId, regenerate: true });
}

/** A chat request (a new message or a regenerate), sent again with the same id after a drop before `start`. */
async function postChat(options, body) {
  const { signal, maxReconnects = 5 } = options;
  const clientMessageId = options.clientMessageId ?? newClientMessageId();
  const reader = new AnswerReader(options);
  const post = () => send(options, "POST", "/chat/stream", { ...body, clientMessageId });
  return reader.run(post, () => reader.resume(), { signal, maxReconnects });
}

/**
 * Read an answer from a character offset on, e.g. one that was still being generated when the page was loaded.
 * Same callbacks and result as `streamChat`.
 *
 * @param {object} options
 * @param {string} options.url
 * @param {string} [options.token]
 * @param {"jwt"|"iam"} [options.authMode="jwt"]
 * @param {string} options.chatSessionId
 * @param {string} options.messageId the answer's id
 * @param {number} [options.offset=0] how many characters the caller has already
 * @param {number} [options.reasoningOffset=0] how many characters of the reasoning the caller has already
 * @param {(text: string, offset: number) => void} [options.onToken]
 * @param {(text: string, offset: number) => void} [options.onReasoning]
 * @param {(done: DoneInfo) => void} [options.onDone]
 * @param {(error: RelayError) => void} [options.onError]
 * @param {AbortSignal} [options.signal]
 * @param {number} [options.maxReconnects=5]
 * @param {typeof fetch} [options.fetch]
 * @returns {Promise<StreamResult>}
 */
export async function followAnswer(options) {
  const { messageId, signal, maxReconnects = 5 } = options;
  const reader = new AnswerReader(options);
  reader.messageId = messageId;
  reader.offset = options.offset ?? 0;
  reader.reasoningOffset = options.reasoningOffset ?? 0;
  const resume = () => reader.resume();
  return reader.run(resume, resume, { signal, maxReconnects });
}

/**
 * Ask the relay to stop generating an answer. The stream then ends with an `error` event, code "cancelled",
 * about a second later, and the text so far is stored as "interrupted".
 *
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", chatSessionId: string, messageId: string,
 *   fetch?: typeof fetch}} options
 * @returns {Promise<void>} rejects with a RelayError (409 "not_streaming" when the answer has already ended)
 */
export async function cancelMessage(options) {
  const path = `${sessionPath(options.chatSessionId)}/messages/${encodeURIComponent(options.messageId)}/cancel`;
  await json(await send(options, "POST", path, {}));
}

/**
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", provider: string, model: string, title?: string,
 *   system?: string, fetch?: typeof fetch}} options
 * @returns {Promise<string>} the new chat session's id
 */
export async function createSession(options) {
  const { provider, model, title, system } = options;
  const body = await json(await send(options, "POST", "/sessions", { provider, model, title, system }));
  return body.chatSessionId;
}

/**
 * @typedef {object} SessionSummary
 * @property {string} chatSessionId
 * @property {string|null} title set by the client, else taken from the first message (or named by a model)
 * @property {string} provider
 * @property {string} model
 * @property {string} createdAt ISO 8601, UTC
 * @property {string} updatedAt the last activity: the latest message's time
 * @property {number} [messageCount] absent on a session no turn has counted yet
 */

/**
 * One page of the user's own conversations, most recently active first.
 *
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", limit?: number, cursor?: string,
 *   fetch?: typeof fetch}} options `limit` 1 to 100 (the relay's default is 20); `cursor` the previous page's
 *   `nextCursor`
 * @returns {Promise<{sessions: SessionSummary[], nextCursor: string|null}>} `nextCursor` is null on the last page
 */
export async function listSessions(options) {
  const query = new URLSearchParams();
  if (options.limit !== undefined) query.set("limit", String(options.limit));
  if (options.cursor) query.set("cursor", options.cursor);
  const path = query.toString() ? `/sessions?${query}` : "/sessions";
  const body = await json(await send(options, "GET", path));
  return { sessions: body.sessions, nextCursor: body.nextCursor ?? null };
}

/**
 * Change a session: any of its title, system text, provider and model, and fallbacks (an empty list removes
 * them), checked as at creation (a model must be one the relay offers: else "model_not_offered").
 *
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", chatSessionId: string, title?: string,
 *   system?: string, provider?: string, model?: string, fallbacks?: Array<{provider: string, model: string}>,
 *   fetch?: typeof fetch}} options
 * @returns {Promise<SessionSummary & {system: string|null, fallbacks: Array<{provider: string, model: string}>}>}
 *   the session as changed; rejects with a RelayError (404 "session_not_found" for a session that is not yours)
 */
export async function updateSession(options) {
  const { title, system, provider, model, fallbacks } = options;
  return json(await send(options, "PATCH", sessionPath(options.chatSessionId), { title, system, provider, model, fallbacks }));
}

/**
 * Erase a session and everything in it. An answer still streaming into it ends with an `error` event,
 * code "session_not_found".
 *
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", chatSessionId: string, fetch?: typeof fetch}} options
 * @returns {Promise<boolean>} true when it was erased now, false when there was none (already erased, or not yours)
 */
export async function deleteSession(options) {
  const response = await send(options, "DELETE", sessionPath(options.chatSessionId));
  if (response.status === 404) return false;
  if (!response.ok) throw await refusal(response);
  return true;
}

/**
 * Erase all of the user's conversations.
 *
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", fetch?: typeof fetch}} options
 * @returns {Promise<boolean>} true when none is left; false when the relay ran out of time first (call it again)
 */
export async function deleteAllSessions(options) {
  const response = await send(options, "DELETE", "/sessions");
  if (!response.ok) throw await refusal(response);
  return response.status === 204;
}

/**
 * @typedef {object} Spending
 * @property {number} inputTokens
 * @property {number} outputTokens
 * @property {number} requests
 */

/**
 * What the user has spent this UTC day and month, and the limits that apply to them (null: none).
 *
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", fetch?: typeof fetch}} options
 * @returns {Promise<{day: Spending, month: Spending, limits: {tokensPerDay: number|null,
 *   tokensPerMonth: number|null, requestsPerMinute: number|null, concurrentStreams: number|null}}>}
 */
export async function getUsage(options) {
  return json(await send(options, "GET", "/usage"));
}

/**
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", chatSessionId: string, fetch?: typeof fetch}} options
 * @returns {Promise<Array<{messageId: string, role: "user"|"ai", content: string, status: string,
 *   attachments?: Array<UploadedAttachment & {url: string}>, error?: {code: string, message: string}}>>} oldest
 *   first; a user message's `attachments` are its images, `mediaType` as their bytes show it, `url` where to show
 *   one from for 5 minutes (`<img src>`; the page's img-src must allow the bucket's origin)
 */
export async function listMessages(options) {
  return (await json(await send(options, "GET", `${sessionPath(options.chatSessionId)}/messages`))).messages;
}

/**
 * @param {{url: string, token?: string, authMode?: "jwt"|"iam", fetch?: typeof fetch}} options
 * @returns {Promise<Array<{name: string, models: string[]}>>} the providers this relay can serve now
 */
export async function listProviders(options) {
  return (await json(await send(options, "GET", "/providers"))).providers;
}

/**
 * Turns bytes into server-sent events as they arrive: lines end at CR, LF or CRLF (also when a CRLF is split
 * across two chunks), a character split across chunks stays whole, an event is dispatched at its blank line.
 */
export class SSEParser {
  /** @param {(event: {event: string, data: string, id: string|null}) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.decoder = new TextDecoder();
    this.buffer = "";
    this.skipLineFeed = false;
    this.event = "";
    this.data = [];
    this.id = null;
  }

  /** @param {Uint8Array} chunk */
  feed(chunk) {
    let text = this.decoder.decode(chunk, { stream: true });
    if (this.skipLineFeed && text.startsWith("\n")) text = text.slice(1);
    if (text) this.skipLineFeed = false;
    this.buffer += text;
    const lineBreak = /\r\n|\r|\n/g;
    let start = 0;
    for (let match; (match = lineBreak.exec(this.buffer)); start = lineBreak.lastIndex) {
      if (match[0] === "\r" && lineBreak.lastIndex === this.buffer.length) this.skipLineFeed = true;
      this.line(this.buffer.slice(start, match.index));
    }
    this.buffer = this.buffer.slice(start);
  }

  /** At the end of the body: an event without its closing blank line is incomplete and dropped, as browsers do. */
  end() {
    this.buffer = "";
  }

  /** @param {string} line */
  line(line) {
    if (line === "") {
      if (this.data.length) this.onEvent({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id" && !value.includes("\0")) this.id = value;
  }
}

class AnswerReader {
  constructor(options) {
    this.options = options;
    this.messageId = null;
    this.offset = 0;
    this.text = "";
    this.reasoningOffset = 0;
    this.reasoning = "";
    this.ended = null;
  }

  async run(first, again, { signal, maxReconnects }) {
    let request = first;
    for (let attempt = 0; ; attempt += 1) {
      try {
        const response = await request();
        if (!response.ok) return this.fail(await refusal(response));
        await this.read(response.body, signal);
        if (this.ended) return this.ended;
      } catch (error) {
        if (signal?.aborted) return this.result("aborted");
        if (error instanceof RelayError) return this.fail(error);
      }
      if (signal?.aborted) return this.result("aborted");
      if (attempt >= maxReconnects) {
        return this.fail(new RelayError("connection_lost", "the connection was lost and could not be resumed"));
      }
      request = this.messageId ? again : first;
      await pause(Math.min(250 * 2 ** attempt, 4000), signal);
    }
  }

  /**
   * The answer from the last offsets received on: the stored reasoning and text, then the rest as it is generated.
   * Once there is reasoning, both offsets go ("<text>:<reasoning>", as the relay's ids then are); before, the
   * text's alone, which is what a relay that knows no reasoning understands.
   */
  resume() {
    const path = `${sessionPath(this.options.chatSessionId)}/messages/${encodeURIComponent(this.messageId)}/stream`;
    const position = this.reasoningOffset ? `${this.offset}:${this.reasoningOffset}` : String(this.offset);
    return send(this.options, "GET", path, undefined, { "Last-Event-ID": position });
  }

  async read(body, signal) {
    const parser = new SSEParser((event) => this.handle(event));
    const reader = body.getReader();
    const stop = () => reader.cancel().catch(() => {});
    signal?.addEventListener("abort", stop, { once: true });
    try {
      while (!this.ended) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      parser.end();
    }
  }

  handle({ event, data, id }) {
    const payload = JSON.parse(data);
    if (event === "start") {
      const first = this.messageId === null;
      this.messageId = payload.messageId;
      if (first) this.options.onStart?.({ messageId: payload.messageId, userMessageId: payload.userMessageId });
    } else if (event === "token") {
      const text = this.take("offset", payload.text, idOffset(id, 0));
      if (text === null) return;
      this.text += text;
      this.options.onToken?.(text, this.offset);
    } else if (event === "reasoning") {
      const text = this.take("reasoningOffset", payload.text, idOffset(id, 1));
      if (text === null) return;
      this.reasoning += text;
      this.options.onReasoning?.(text, this.reasoningOffset);
    } else if (event === "done") {
      this.messageId = payload.messageId ?? this.messageId;
      this.ended = this.result("complete");
      this.options.onDone?.(payload);
    } else if (event === "error") {
      this.fail(new RelayError(payload.code, payload.message));
    }
  }

  /**
   * The part of a delta not had yet, by the offset after it (null: all of it is new), moving `this[position]` on;
   * null when it was all had already (a resumed stream may repeat the boundary, or start before it).
   */
  take(position, delta, offsetAfter) {
    const size = codePoints(delta);
    const offset = offsetAfter ?? this[position] + size;
    if (offset <= this[position]) return null;
    const overlap = this[position] - (offset - size);
    this[position] = offset;
    return overlap > 0 ? Array.from(delta).slice(overlap).join("") : delta;
  }

  fail(error) {
    this.ended = this.result("error");
    this.options.onError?.(error);
    return this.ended;
  }

  result(status) {
    return { status, text: this.text, reasoning: this.reasoning, messageId: this.messageId };
  }
}

async function send(options, method, path, body, headers = {}) {
  const request = { method, headers: { Accept: "application/json, text/event-stream", ...headers }, signal: options.signal };
  const behindCloudFront = options.authMode === "iam";
  if (options.token) {
    request.headers[behindCloudFront ? "X-User-Authorization" : "Authorization"] = `Bearer ${options.token}`;
  }
  if (body !== undefined) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(body);
    if (behindCloudFront) {
      request.body = new TextEncoder().encode(request.body); // the very bytes hashed are the ones sent
      request.headers["x-amz-content-sha256"] = await sha256Hex(request.body);
    }
  }
  return (options.fetch ?? fetch)(options.url.replace(/\/+$/, "") + path, request);
}

/** What CloudFront's Origin Access Control signs a body by: its SHA-256, as lowercase hex. */
async function sha256Hex(bytes) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw new RelayError("web_crypto_unavailable",
      'authMode "iam" hashes each request body with Web Crypto, which browsers offer on https and localhost pages only');
  }
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function json(response) {
  if (!response.ok) throw await refusal(response);
  return response.json();
}

async function refusal(response) {
  let body = {};
  try {
    body = (await response.json()) ?? {};
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  // The relay's refusals are {"error": {code, message}}; AWS's own (a function URL's signature check) {"message"}.
  const error = body.error ?? {};
  const message = error.message ?? body.message ?? body.Message ?? response.statusText;
  const retryAfter = /^\d+$/.test(response.headers.get("retry-after") ?? "")
    ? Number(response.headers.get("retry-after")) : undefined; // the relay sends seconds, never an HTTP date
  return new RelayError(error.code ?? `http_${response.status}`, message, response.status, retryAfter);
}

/** Offsets count Unicode code points, as the relay's stored text does; a JS string's length counts UTF-16 units. */
function codePoints(text) {
  let count = text.length;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xdc00 && unit <= 0xdfff && i > 0 && text.charCodeAt(i - 1) >= 0xd800 && text.charCodeAt(i - 1) <= 0xdbff) {
      count -= 1;
    }
  }
  return count;
}

/** Offset `index` of an event id: "<text offset>", or "<text>:<reasoning>" once the answer has reasoning. */
function idOffset(id, index) {
  const part = id?.split(":")[index];
  return part !== undefined && /^\d+$/.test(part) ? Number(part) : null;
}

function sessionPath(chatSessionId) {
  return `/sessions/${encodeURIComponent(chatSessionId)}`;
}

function newClientMessageId() {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
