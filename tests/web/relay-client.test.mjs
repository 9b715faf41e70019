// The client module against scripted responses: `node --test tests/web/` (tests/test_web.py runs it).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import {
  cancelMessage, createSession, listMessages, RelayError, SSEParser, streamChat,
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
    const text = typeof request.body === "string" ? request.body : new TextDecoder().decode(request.body);
    calls.push({ url, ...request, json: request.body ? JSON.parse(text) : undefined });
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
