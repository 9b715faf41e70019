"""The chat function's ASGI entry point: ``run.sh`` starts uvicorn on ``app:app`` behind the Lambda Web Adapter.

The relay library itself comes from the layer (``layers/relay``), mounted at /opt/python.
"""

from relay.app import create_app

app = create_app()
