"""Docker-free local tooling: the simulated provider, the local run (`make dev`) and the event runner (`make invoke`).

None of this is deployed; the tests use the same pieces.
"""
