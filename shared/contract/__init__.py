"""The contract layer of ``shared``.

What travels between the services: the events, the topic registry, the sales
channels' names and the events' JSON schemas.
"""
