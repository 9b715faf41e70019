"""Entry points the benchmark measures beside the chat function's own (functions/chat/app.py), each a choice the
relay did not take, kept so that ``make bench`` shows why (devtools/bench.py, real-world latencies)."""

from relay.app import create_app

# The DynamoDB client, and its first connection, made while the app imports, not once it serves.
store_at_import = create_app()
store_at_import.state.store.connect()
