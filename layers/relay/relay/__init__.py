"""A streaming LLM chat relay: an ASGI app that stores a chat turn in DynamoDB while relaying a provider's tokens.

The modules, each one concern:

- ``app``: the HTTP layer (routes, validation, SSE or plain-text responses).
- ``turn``: the relay loop for one chat turn; the only module that knows the others.
- ``store``: DynamoDB persistence of sessions and messages.
- ``providers``: one module per provider, each turning its wire format into ``events``.
- ``telemetry``: Powertools logs and EMF metrics.
- ``config``: every setting and limit, resolved argument → environment → default.
"""

__version__ = "0.1.0"
