"""The platform layer of ``shared``.

What every process runs on: settings, logging, errors, tracing, HTTP, the
database pool, child processes, memory and waits. It knows nothing of the pipeline.
"""
