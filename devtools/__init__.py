"""Docker-free local tooling: the simulated provider, the local run (`make dev`), the event runner (`make invoke`),
the smoke test (`make smoke`, also for a deployed relay), the report, the benchmark and the load run, and the
environment `sam local invoke` would give the function (run with SAM CLI's own Python, in .venv-sam).

None of this is deployed; the tests use the same pieces.
"""
