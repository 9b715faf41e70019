// The client module against scripted responses: `node --test tests/web/` (tests/test_web.py runs it).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import {
  cancelMessage, createSession, deleteAllSessions, deleteSession, getUsage, listMessages, listSessions, regenerate,
  RelayError, SSEParser, streamChat, updateSession, uploadAttachment,
} from "../../web/relay-client.js";

const encoder = new TextEncoder();

/** A body that sends `chunks` (strings or bytes), then ends, or fails like a dropped connection. */
function body(chunks, { drop = false } = {}) {
  return new ReadableStream({
    async pull(controller) {
      if (!chunks.length) {
        if (drop) controller.error(new TypeError("network error"));
        else controller.close();
        return;
      }
      const chunk = chunks.shift();
      controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
    },
  });
}

function eventStream(chunks, options) {
  return new Response(body(chunks, options), { headers: { "content-type": "text/event-stream" } });
}

/** A fetch that answers each call with the next scripted response, and records the calls. */
function scripted(...responses) {
  const calls = [];
  const fetch = async (url, request) => {
    const { body } = request;
    const text = body instanceof Blob ? "" : typeof body === "string" ? body : new TextDecoder().decode(body);
    calls.push({ url, ...request, json: text ? JSON.parse(text) : undefined });
    const next = responses.shift();
    if (!next) throw new Error("no more responses");
    return next();
  };
  return { fetch, calls };
}

function collect(overrides = {}) {
  const seen = { tokens: [], offsets: [], reasoning: [], reasoningOffsets: [], done: [], errors: [], starts: [] };
  return {
    seen,
    options: {
      url: "http://relay.test/",
      chatSessionId: "01HZY00000000000000000DEM0",
      content: "hi",
      onStart: (ids) => seen.starts.push(ids),
      onToken: (text, offset) => { seen.tokens.push(text); seen.offsets.push(offset); },
      onReasoning: (text, offset) => { seen.reasoning.push(text); seen.reasoningOffsets.push(offset); },
      onDone: (done) => seen.done.push(done),
      onError: (error) => seen.errors.push(error),
      ...overrides,
    },
  };
}

const START = 'event: start\ndata: {"messageId":"01HZY000000000000000000AI1","userMessageId":"01HZY000000000000000000US1"}\n\n';
const DONE = 'event: done\ndata: {"messageId":"01HZY000000000000000000AI1","finishReason":"stop"}\n\n';
const token = (text, offset) => `id: ${offset}\nevent: token\ndata: ${JSON.stringify({ text })}\n\n`;
const reasoning = (text, offset, reasoningOffset) =>
  `id: ${offset}:${reasoningOffset}\nevent: reasoning\ndata: ${JSON.stringify({ text })}\n\n`;

test("events split anywhere across chunks arrive whole: mid-field, mid-CRLF, mid-character", async () => {
  const wire = encoder.encode((START + token("café ", 5) + token("🙂", 6) + DONE).replaceAll("\n", "\r\n"));
  const smiley = wire.indexOf(0xf0);
  const crlf = wire.indexOf(13) + 1; // between the CR and the LF of the first line
  const cuts = [3, crlf, 40, smiley + 2, wire.length - 5].sort((a, b) => a - b);
  const chunks = cuts.map((cut, i) => wire.slice(i ? cuts[i - 1] : 0, cut));
  chunks.push(wire.slice(cuts.at(-1)));
  const { fetch, calls } = scripted(() => eventStream(chunks));
  const { seen, options } = collect({ fetch });

  const result = await streamChat(options);

  assert.deepEqual(seen.tokens, ["café ", "🙂"]);
  assert.deepEqual(seen.offsets, [5, 6]); // code points, as the relay counts them, not UTF-16 units
  assert.deepEqual(result, { status: "complete", text: "café 🙂", reasoning: "", messageId: "01HZY000000000000000000AI1" });
  assert.equal(seen.starts.length, 1);
  assert.equal(seen.done[0].finishReason, "stop");
  assert.equal(calls[0].url, "http://relay.test/chat/stream");
  assert.equal(calls[0].json.content, "hi");
  assert.ok(calls[0].json.clientMessageId, "an idempotency key is always sent");
});

test("the parser keeps CR, LF and CRLF apart and ignores comments and unknown fields", () => {
  const events = [];
  const parser = new SSEParser((event) => events.push(event));
  for (const piece of [": keep-alive\r", "\nevent: a\rdata: 1\r", "\r", "retry: 5\ndata: x\ndata: y\n\n", "data: cut"]) {
    parser.feed(encoder.encode(piece));
  }
  parser.end();
  assert.deepEqual(events, [{ event: "a", data: "1", id: null }, { event: "message", data: "x\ny", id: null }]);
});

test("an error event ends the stream: onError with its code and message, and the text so far", async () => {
  const error = 'event: error\ndata: {"code":"provider_error","message":"the provider failed"}\n\n';
  const { fetch } = scripted(() => eventStream([START, token("Hello", 5), error]));
  const { seen, options } = collect({ fetch });

  const result = await streamChat(options);

  assert.equal(result.status, "error");
  assert.equal(result.text, "Hello");
  assert.equal(seen.errors.length, 1);
  assert.ok(seen.errors[0] instanceof RelayError);
  assert.equal(seen.errors[0].code, "provider_error");
  assert.equal(seen.errors[0].message, "the provider failed");
  assert.deepEqual(seen.done, []);
});

test("a refused request is a RelayError with the relay's code and the HTTP status", async () => {
  const refusal = { error: { code: "rate_limited", message: "too many requests" } };
  const { fetch } = scripted(() => Response.json(refusal, { status: 429 }));
  const { seen, options } = collect({ fetch });

  const result = await streamChat(options);

  assert.equal(result.status, "error");
  assert.deepEqual([seen.errors[0].code, seen.errors[0].status], ["rate_limited", 429]);
});

test("a spent budget's refusal carries its Retry-After in seconds, and a refusal without one none", async () => {
  const spent = { error: { code: "budget_exceeded", message: "you have used this day's budget of 20 tokens" } };
  const { fetch } = scripted(
    () => Response.json(spent, { status: 429, headers: { "retry-after": "3600" } }),
    () => Response.json({ error: { code: "session_not_found", message: "no such session" } }, { status: 404 }),
  );
  const { seen, options } = collect({ fetch });

  await streamChat(options);
  await streamChat(options);

  assert.deepEqual(seen.errors.map(({ code, status, retryAfter }) => [code, status, retryAfter]),
    [["budget_exceeded", 429, 3600], ["session_not_found", 404, undefined]]);
});

test("a connection dropped mid-answer resumes from the last offset, without repeating text", async () => {
  const { fetch, calls } = scripted(
    () => eventStream([START, token("Hello", 5), token(" 🙂 wor", 11)], { drop: true }),
    () => eventStream([token("🙂 world", 13), DONE]), // from a checkpoint before the offset asked for: overlaps
  );
  const { seen, options } = collect({ fetch });

  const result = await streamChat(options);

  assert.equal(result.text, "Hello 🙂 world");
  assert.equal(result.status, "complete");
  assert.deepEqual(seen.tokens, ["Hello", " 🙂 wor", "ld"]);
  assert.equal(calls[1].method, "GET");
  assert.equal(calls[1].url, "http://relay.test/sessions/01HZY00000000000000000DEM0/messages/01HZY000000000000000000AI1/stream");
  assert.equal(calls[1].headers["Last-Event-ID"], "11");
});

test("reasoning reaches onReasoning with its own offsets, apart from the text, and is in the result", async () => {
  const { fetch } = scripted(() => eventStream([
    START, reasoning("Let me 🤔", 0, 8), reasoning(" think", 0, 14), token("Hi", 2), reasoning(" more", 2, 19),
    token(" you", 6), DONE,
  ]));
  const { seen, options } = collect({ fetch });

  const result = await streamChat(options);

  assert.deepEqual(seen.reasoning, ["Let me 🤔", " think", " more"]);
  assert.deepEqual(seen.reasoningOffsets, [8, 14, 19]); // code points, as the relay counts them
  assert.deepEqual(seen.tokens, ["Hi", " you"]);
  assert.deepEqual(seen.offsets, [2, 6]);
  assert.deepEqual(result, { status: "complete", text: "Hi you", reasoning: "Let me 🤔 think more",
    messageId: "01HZY000000000000000000AI1" });
});

test("a connection dropped mid-reasoning resumes from both offsets, without repeating reasoning", async () => {
  const { fetch, calls } = scripted(
    () => eventStream([START, reasoning("Let me", 0, 6), reasoning(" thi", 0, 10)], { drop: true }),
    () => eventStream([reasoning("think it over", 0, 20), token("Yes", 3), DONE]), // overlaps what it had
  );
  const { seen, options } = collect({ fetch });

  const result = await streamChat(options);

  assert.equal(calls[1].headers["Last-Event-ID"], "0:10");
  assert.deepEqual(seen.reasoning, ["Let me", " thi", "nk it over"]);
  assert.deepEqual([result.reasoning, result.text], ["Let me think it over", "Yes"]);
});

test("once text has come the resume still names the reasoning's offset, and a plain id goes before any", async () => {
  const dropped = (events) => () => eventStream(events, { drop: true });
  const { fetch, calls } = scripted(
    dropped([START, token("Hi", 2)]),
    dropped([reasoning("Hmm", 2, 3), token(" there", 8)]),
    () => eventStream([DONE]),
  );
  const { options } = collect({ fetch });

  await streamChat(options);

  assert.deepEqual(calls.slice(1).map((call) => call.headers["Last-Event-ID"]), ["2", "8:3"]);
});

test("a connection dropped before the answer had an id sends the same request again, same clientMessageId", async () => {
  const { fetch, calls } = scripted(
    () => eventStream([], { drop: true }),
    () => eventStream([START, token("Hi", 2), DONE]),
  );
  const { options } = collect({ fetch });

  const result = await streamChat(options);

  assert.equal(result.text, "Hi");
  assert.deepEqual(calls.map((call) => call.method), ["POST", "POST"]);
  assert.equal(calls[1].json.clientMessageId, calls[0].json.clientMessageId);
});

test("a stream that keeps failing ends in connection_lost after maxReconnects", async () => {
  const drop = () => eventStream([START], { drop: true });
  const { fetch, calls } = scripted(drop, drop, drop);
  const { seen, options } = collect({ fetch, maxReconnects: 2 });

  const result = await streamChat(options);

  assert.equal(result.status, "error");
  assert.equal(seen.errors[0].code, "connection_lost");
  assert.equal(calls.length, 3);
});

test("aborting stops reading and settles as aborted", async () => {
  const controller = new AbortController();
  let more;
  const stalled = new ReadableStream({
    start(stream) {
      stream.enqueue(encoder.encode(START + token("Hi", 2)));
      more = stream;
    },
  });
  const { fetch } = scripted(() => new Response(stalled));
  const { seen, options } = collect({
    fetch, signal: controller.signal, onToken: (text) => { seen.tokens.push(text); controller.abort(); },
  });

  const result = await streamChat(options);

  assert.equal(result.status, "aborted");
  assert.equal(result.text, "Hi");
  assert.deepEqual(seen.errors, []);
  assert.ok(more);
});

/** The header named `name`, whatever its case, or undefined. */
function header(call, name) {
  const found = Object.keys(call.headers).find((key) => key.toLowerCase() === name.toLowerCase());
  return found === undefined ? undefined : call.headers[found];
}

/** The SHA-256 of the UTF-8 bytes of `text`, by Node's own crypto: a second implementation to check against. */
const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");

test('authMode "iam": a body goes with the SHA-256 of its exact bytes, non-ASCII included', async () => {
  const content = "Grüße, 世界 🙂 — \u2028 \"quoted\"";
  const { fetch, calls } = scripted(() => eventStream([START, token("ok", 2), DONE]));
  const { options } = collect({ fetch, authMode: "iam", content, clientMessageId: "client-1" });

  await streamChat(options);

  const sent = new TextDecoder().decode(calls[0].body);
  assert.equal(sent, JSON.stringify({ chatSessionId: options.chatSessionId, content, clientMessageId: "client-1" }));
  assert.equal(header(calls[0], "x-amz-content-sha256"), sha256(sent));
  assert.notEqual(sha256(sent), createHash("sha256").update(sent, "latin1").digest("hex")); // the bytes matter
});

test('authMode "iam": the token travels in X-User-Authorization, never Authorization, on every request', async () => {
  const created = () => Response.json({ chatSessionId: "01HZY00000000000000000DEM0" }, { status: 201 });
  const listed = () => Response.json({ messages: [] });
  const cancelled = () => Response.json({ messageId: "01HZY000000000000000000AI1", status: "cancelling" }, { status: 202 });
  const { fetch, calls } = scripted(created, listed, cancelled);
  const connection = { url: "http://relay.test", token: "user-token", authMode: "iam", fetch };

  await createSession({ ...connection, provider: "simulated", model: "sim" });
  await listMessages({ ...connection, chatSessionId: "01HZY00000000000000000DEM0" });
  await cancelMessage({ ...connection, chatSessionId: "01HZY00000000000000000DEM0", messageId: "01HZY000000000000000000AI1" });

  assert.deepEqual(calls.map((call) => header(call, "X-User-Authorization")), Array(3).fill("Bearer user-token"));
  assert.deepEqual(calls.map((call) => header(call, "Authorization")), [undefined, undefined, undefined]);
  const [create, list, cancel] = calls;
  assert.equal(header(create, "x-amz-content-sha256"), sha256('{"provider":"simulated","model":"sim"}'));
  assert.equal(header(cancel, "x-amz-content-sha256"), sha256("{}"));
  assert.equal(header(list, "x-amz-content-sha256"), undefined); // a GET has no body to sign
});

test('authMode "iam": a resume is a GET with the token and no hash; a repeated POST is hashed again', async () => {
  const { fetch, calls } = scripted(
    () => eventStream([], { drop: true }),
    () => eventStream([START, token("Hel", 3)], { drop: true }),
    () => eventStream([token("lo", 5), DONE]),
  );
  const { options } = collect({ fetch, authMode: "iam", token: "user-token" });

  const result = await streamChat(options);

  assert.equal(result.text, "Hello");
  assert.deepEqual(calls.map((call) => call.method), ["POST", "POST", "GET"]);
  const [first, again, resume] = calls;
  assert.equal(header(again, "x-amz-content-sha256"), header(first, "x-amz-content-sha256"));
  assert.equal(header(again, "x-amz-content-sha256"), sha256(new TextDecoder().decode(again.body)));
  assert.equal(header(resume, "x-amz-content-sha256"), undefined);
  assert.equal(header(resume, "X-User-Authorization"), "Bearer user-token");
});

test("by default the token is the Authorization header and no hash is sent", async () => {
  const { fetch, calls } = scripted(() => eventStream([START, DONE]));
  const { options } = collect({ fetch, token: "user-token" });

  await streamChat(options);

  assert.equal(header(calls[0], "Authorization"), "Bearer user-token");
  assert.equal(header(calls[0], "X-User-Authorization"), undefined);
  assert.equal(header(calls[0], "x-amz-content-sha256"), undefined);
});

test("AWS's own refusal (a signature that does not match) reads as its message, with the HTTP status", async () => {
  const message = "The request signature we calculated does not match the signature you provided.";
  const { fetch } = scripted(() => Response.json({ message }, { status: 403 }));
  const { seen, options } = collect({ fetch, authMode: "iam" });

  const result = await streamChat(options);

  assert.equal(result.status, "error");
  assert.deepEqual([seen.errors[0].code, seen.errors[0].message, seen.errors[0].status], ["http_403", message, 403]);
});

test('authMode "iam" without Web Crypto (a plain-http page) is refused with a clear error, and nothing is sent', async () => {
  const { fetch, calls } = scripted();
  const { seen, options } = collect({ fetch, authMode: "iam" });
  const crypto = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });
  try {
    const result = await streamChat(options);
    assert.equal(result.status, "error");
  } finally {
    Object.defineProperty(globalThis, "crypto", crypto);
  }

  assert.equal(seen.errors[0].code, "web_crypto_unavailable");
  assert.deepEqual(calls, []);
});

// Conversations, usage and regenerate.

const SESSION = "01HZY00000000000000000DEM0";
const connection = (fetch, extra = {}) => ({ url: "http://relay.test/", token: "user-token", fetch, ...extra });

test("listSessions asks for a page with its limit and cursor, and gives back the next cursor (null at the end)", async () => {
  const first = { sessions: [{ chatSessionId: SESSION, title: "t" }], nextCursor: "next/page+1" };
  const last = { sessions: [{ chatSessionId: "01HZY00000000000000000OLD0", title: null }] };
  const { fetch, calls } = scripted(() => Response.json(first), () => Response.json(last));

  const page = await listSessions(connection(fetch, { limit: 1 }));
  const end = await listSessions(connection(fetch, { limit: 1, cursor: page.nextCursor }));

  assert.deepEqual(page, first);
  assert.deepEqual(end, { sessions: last.sessions, nextCursor: null });
  assert.deepEqual(calls.map((call) => [call.method, call.url]), [
    ["GET", "http://relay.test/sessions?limit=1"],
    ["GET", "http://relay.test/sessions?limit=1&cursor=next%2Fpage%2B1"],
  ]);
  assert.equal(header(calls[0], "Authorization"), "Bearer user-token");
});

test("listSessions with no options asks for the relay's default page", async () => {
  const { fetch, calls } = scripted(() => Response.json({ sessions: [] }));
  assert.deepEqual(await listSessions(connection(fetch)), { sessions: [], nextCursor: null });
  assert.equal(calls[0].url, "http://relay.test/sessions");
});

test("updateSession PATCHes only the fields given and answers the session", async () => {
  const session = { chatSessionId: SESSION, title: "Renamed", provider: "simulated", model: "sim", system: null, fallbacks: [] };
  const { fetch, calls } = scripted(() => Response.json(session));

  const updated = await updateSession(connection(fetch, { chatSessionId: SESSION, title: "Renamed" }));

  assert.deepEqual(updated, session);
  assert.equal(calls[0].method, "PATCH");
  assert.equal(calls[0].url, `http://relay.test/sessions/${SESSION}`);
  assert.deepEqual(calls[0].json, { title: "Renamed" });
});

test("updateSession refused (a model not offered) rejects with the relay's code and status", async () => {
  const refusal = { error: { code: "model_not_offered", message: "openai offers these models here: gpt-4o-mini" } };
  const { fetch } = scripted(() => Response.json(refusal, { status: 422 }));

  await assert.rejects(updateSession(connection(fetch, { chatSessionId: SESSION, model: "gpt-x" })),
    (error) => error instanceof RelayError && error.code === "model_not_offered" && error.status === 422);
});

test("deleteSession: true when erased now, false when there was none, a RelayError when the store fails", async () => {
  const unavailable = { error: { code: "store_unavailable", message: "try again shortly" } };
  const { fetch, calls } = scripted(
    () => new Response(null, { status: 204 }),
    () => Response.json({ error: { code: "session_not_found", message: "no chat session with this id" } }, { status: 404 }),
    () => Response.json(unavailable, { status: 503 }),
  );

  assert.equal(await deleteSession(connection(fetch, { chatSessionId: SESSION })), true);
  assert.equal(await deleteSession(connection(fetch, { chatSessionId: SESSION })), false);
  await assert.rejects(deleteSession(connection(fetch, { chatSessionId: SESSION })),
    (error) => error.code === "store_unavailable" && error.status === 503);
  assert.deepEqual(calls.map((call) => [call.method, call.url, call.body]),
    Array(3).fill(["DELETE", `http://relay.test/sessions/${SESSION}`, undefined]));
});

test("deleteAllSessions: true when none is left, false when the relay ran out of time (202)", async () => {
  const { fetch, calls } = scripted(
    () => Response.json({ status: "incomplete", message: "send it again" }, { status: 202 }),
    () => new Response(null, { status: 204 }),
  );

  assert.equal(await deleteAllSessions(connection(fetch)), false);
  assert.equal(await deleteAllSessions(connection(fetch)), true);
  assert.deepEqual(calls.map((call) => [call.method, call.url]), Array(2).fill(["DELETE", "http://relay.test/sessions"]));
});

test("getUsage answers the day's and month's spending and the limits", async () => {
  const usage = { day: { inputTokens: 5, outputTokens: 40, requests: 1 }, month: { inputTokens: 50, outputTokens: 400, requests: 10 },
    limits: { tokensPerDay: 1000, tokensPerMonth: null, requestsPerMinute: 20, concurrentStreams: 3 } };
  const { fetch, calls } = scripted(() => Response.json(usage));

  assert.deepEqual(await getUsage(connection(fetch)), usage);
  assert.deepEqual([calls[0].method, calls[0].url], ["GET", "http://relay.test/usage"]);
});

test("regenerate posts {chatSessionId, regenerate: true} with no content and streams the new answer", async () => {
  const { fetch, calls } = scripted(() => eventStream([START, token("Again", 5), DONE]));
  const { seen, options } = collect({ fetch, content: undefined, clientMessageId: "regen-1" });

  const result = await regenerate(options);

  assert.deepEqual(calls[0].json, { chatSessionId: SESSION, regenerate: true, clientMessageId: "regen-1" });
  assert.equal(calls[0].url, "http://relay.test/chat/stream");
  assert.deepEqual(result, { status: "complete", text: "Again", reasoning: "", messageId: "01HZY000000000000000000AI1" });
  assert.equal(seen.starts[0].userMessageId, "01HZY000000000000000000US1");
});

test("regenerate dropped before start is sent again as the same regenerate; then resumed after start", async () => {
  const { fetch, calls } = scripted(
    () => eventStream([], { drop: true }),
    () => eventStream([START, token("Ag", 2)], { drop: true }),
    () => eventStream([token("ain", 5), DONE]),
  );
  const { options } = collect({ fetch, content: undefined });

  const result = await regenerate(options);

  assert.equal(result.text, "Again");
  assert.deepEqual(calls.map((call) => call.method), ["POST", "POST", "GET"]);
  assert.deepEqual(calls[1].json, calls[0].json);
  assert.equal(calls[1].json.regenerate, true);
  assert.equal(calls[2].headers["Last-Event-ID"], "2");
});

test("regenerate refused while the last answer is generated reports answer_in_progress", async () => {
  const refusal = { error: { code: "answer_in_progress", message: "the last answer is still being generated" } };
  const { fetch } = scripted(() => Response.json(refusal, { status: 409 }));
  const { seen, options } = collect({ fetch, content: undefined });

  const result = await regenerate(options);

  assert.equal(result.status, "error");
  assert.deepEqual([seen.errors[0].code, seen.errors[0].status], ["answer_in_progress", 409]);
});

test('authMode "iam": a PATCH is hashed, a DELETE has nothing to hash, the token never in Authorization', async () => {
  const { fetch, calls } = scripted(() => Response.json({ chatSessionId: SESSION }), () => new Response(null, { status: 204 }));
  const iam = connection(fetch, { authMode: "iam", chatSessionId: SESSION });

  await updateSession({ ...iam, title: "Grüße 🙂" });
  await deleteSession(iam);

  const [patch, erase] = calls;
  assert.equal(header(patch, "x-amz-content-sha256"), sha256(JSON.stringify({ title: "Grüße 🙂" })));
  assert.equal(header(erase, "x-amz-content-sha256"), undefined);
  assert.deepEqual(calls.map((call) => header(call, "X-User-Authorization")), ["Bearer user-token", "Bearer user-token"]);
  assert.deepEqual(calls.map((call) => header(call, "Authorization")), [undefined, undefined]);
});

const UPLOAD = {
  attachmentId: "01HZY00000000000000000ATT1",
  uploadUrl: "https://bucket.s3.eu-west-1.amazonaws.com/01HZY00000000000000000DEM0/01HZY00000000000000000ATT1?X-Amz-Signature=abc",
  uploadHeaders: { "Content-Type": "image/png" },
  expiresAt: "2026-12-02T12:05:00Z",
};

test("uploadAttachment asks the relay for an upload of the image's type and size, then PUTs it to the bucket", async () => {
  const { fetch, calls } = scripted(() => Response.json(UPLOAD, { status: 201 }), () => new Response(null, { status: 200 }));
  const file = new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3])], { type: "image/png" });

  const uploaded = await uploadAttachment(connection(fetch, { chatSessionId: SESSION, file }));

  assert.deepEqual(uploaded, { attachmentId: UPLOAD.attachmentId, mediaType: "image/png", size: 7 });
  const [ask, put] = calls;
  assert.deepEqual([ask.method, ask.url, ask.json], ["POST", `http://relay.test/sessions/${SESSION}/attachments`,
    { mediaType: "image/png", size: 7 }]);
  assert.equal(header(ask, "Authorization"), "Bearer user-token");
  // the image goes to the bucket as it is, with the signed headers only: never the user's token
  assert.deepEqual([put.method, put.url, put.headers], ["PUT", UPLOAD.uploadUrl, { "Content-Type": "image/png" }]);
  assert.equal(put.body, file);
});

test("uploadAttachment refused by the relay rejects with its code; refused by the bucket, with upload_failed", async () => {
  const tooLarge = { error: { code: "attachment_too_large", message: "an image may be at most 3750000 bytes" } };
  const { fetch, calls } = scripted(
    () => Response.json(tooLarge, { status: 422 }),
    () => Response.json(UPLOAD, { status: 201 }),
    () => new Response("<Error><Code>SignatureDoesNotMatch</Code></Error>", { status: 403 }),
  );
  const file = new Blob(["not checked here"], { type: "image/png" });

  await assert.rejects(uploadAttachment(connection(fetch, { chatSessionId: SESSION, file })),
    (error) => error instanceof RelayError && error.code === "attachment_too_large" && error.status === 422);
  await assert.rejects(uploadAttachment(connection(fetch, { chatSessionId: SESSION, file })),
    (error) => error instanceof RelayError && error.code === "upload_failed" && error.status === 403);
  assert.equal(calls.length, 3); // nothing PUT after the relay's refusal
});

test('uploadAttachment with authMode "iam": the request to the relay is hashed, the PUT to the bucket is not', async () => {
  const { fetch, calls } = scripted(() => Response.json(UPLOAD, { status: 201 }), () => new Response(null, { status: 200 }));
  const file = new Blob(["GIF89a"], { type: "image/gif" });

  await uploadAttachment(connection(fetch, { authMode: "iam", chatSessionId: SESSION, file }));

  const [ask, put] = calls;
  assert.equal(header(ask, "x-amz-content-sha256"), sha256(JSON.stringify({ mediaType: "image/gif", size: 6 })));
  assert.equal(header(ask, "X-User-Authorization"), "Bearer user-token");
  assert.deepEqual(put.headers, { "Content-Type": "image/png" });
});

test("streamChat names its attachments in the request, and leaves the field out when there are none", async () => {
  const { fetch, calls } = scripted(() => eventStream([START, DONE]), () => eventStream([START, DONE]),
    () => eventStream([START, DONE]));

  await streamChat(collect({ fetch, content: "", attachments: [UPLOAD.attachmentId] }).options);
  await streamChat(collect({ fetch, content: "Look", attachments: [UPLOAD.attachmentId] }).options);
  await streamChat(collect({ fetch, content: "hi", attachments: [] }).options);

  // Images alone go without content (the relay takes no empty text); with text, both go.
  assert.deepEqual(calls[0].json.attachments, [UPLOAD.attachmentId]);
  assert.equal("content" in calls[0].json, false);
  assert.deepEqual([calls[1].json.content, calls[1].json.attachments], ["Look", [UPLOAD.attachmentId]]);
  assert.equal("attachments" in calls[2].json, false);
});
