"""A streaming LLM chat relay: an ASGI app that stores a chat turn in DynamoDB while relaying a provider's tokens.

The modules, each one concern, from the top down (a module imports only those below it):

- ``app``: the HTTP layer (routes, what a request means, the streamed responses); ``bodies``: request bodies read,
  parsed and validated against the API's schema; ``encodings``: the wire formats of a turn's events (SSE, plain
  text, the AI SDK's UI message stream).
- ``api``: every body of the API, defined once (pydantic); ``openapi``: the OpenAPI document and the validators'
  schemas drawn from it (never imported on the request path).
- ``admission``: whether a chat request starts a turn, joins one, or is refused, and what it gives back.
- ``turn``: one chat turn in named steps; ``resume``: following a stored answer from an offset; ``titles``: a
  session's title, from its first message or from ``TITLE_MODEL`` after its first answer.
- ``reader``: a provider's stream under the turn's clocks; ``tally``: what a turn received, stored and reported.
- ``store``: the chat table; ``attachments``: the images bucket (presigned uploads, images read back and sniffed,
  a conversation's erased); ``limits``: the limits table's requests per minute and stream leases; ``usage``: the
  limits table's tokens and requests per day and month, and the budgets; ``dynamodb``: the client and the codec;
  ``aws``: the AWS clients (DynamoDB's, S3's) made in the background, and calls bounded in time.
- ``providers``: one module per provider, each turning its wire format into ``events``; ``connections``: the one
  HTTP client, its provider connections opened ahead and kept fresh; ``sse``: the decoder; ``reasoning``: a
  session's reasoning option, validated once and mapped by each provider.
- ``auth``, ``context``, ``telemetry``, ``tracing``: who calls, what Lambda says, logs and metrics, traces.
- ``records``, ``events``, ``errors``, ``config``, ``json_input``: the data shapes, events, exceptions and settings
  all share, and JSON from outside parsed with its nesting bounded.
"""

__version__ = "0.1.0"
