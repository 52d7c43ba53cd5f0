"""The adapters layer of ``shared``.

The engine's outside world: the vendor clients and sales channels, the
PostgreSQL stores and their migrations, image storage, vendor credentials and OAuth.
"""
