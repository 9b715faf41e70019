// Sends one message to the relay the way `useChat` does and reads the answer with the AI SDK's own code
// (DefaultChatTransport, then readUIMessageStream). Prints what it read as JSON; tests/test_ai_sdk.py checks it.
// Usage: node tests/web/ai_sdk_reader.mjs <relay url> <chatSessionId> <text> [<file parts as JSON> [<trigger>
// <user message id>]] (trigger "regenerate-message", with the id of the message sent before, is what useChat's
// regenerate() posts).
import { DefaultChatTransport, readUIMessageStream } from "ai";

const [url, chatSessionId, text, files = "[]", trigger = "submit-message", userMessageId = `user-${Date.now()}`] =
  process.argv.slice(2);
// The README's setup: only the new message is sent, the relay keeps the history.
const transport = new DefaultChatTransport({
  api: `${url}/chat/stream?protocol=ai-sdk`,
  headers: () => ({ Authorization: "Bearer not-checked-locally" }),
  prepareSendMessagesRequest: ({ id, messages, trigger }) => ({ body: { id, trigger, messages: messages.slice(-1) } }),
});
const messages = [
  { id: "earlier", role: "user", parts: [{ type: "text", text: "an earlier question" }] },
  { id: "earlier-answer", role: "assistant", parts: [{ type: "text", text: "an earlier answer" }] },
  { id: userMessageId, role: "user", parts: [...JSON.parse(files), { type: "text", text }] },
];
const stream = await transport.sendMessages({
  chatId: chatSessionId, messages, trigger, messageId: undefined, abortSignal: undefined,
});

const [forChunks, forMessages] = stream.tee();
const chunks = [];
const readingChunks = (async () => {
  for await (const chunk of forChunks) chunks.push(chunk);
})();
const errors = [];
const snapshots = [];
const reasoningSnapshots = [];
for await (const message of readUIMessageStream({ stream: forMessages, onError: (error) => errors.push(String(error.message ?? error)) })) {
  const textPart = message.parts.find((part) => part.type === "text");
  const reasoningPart = message.parts.find((part) => part.type === "reasoning");
  snapshots.push(textPart ? textPart.text : "");
  reasoningSnapshots.push(reasoningPart ? reasoningPart.text : "");
  var last = message;
}
await readingChunks;
console.log(JSON.stringify({ chunks, message: last ?? null, snapshots, reasoningSnapshots, errors }));
