"""The pipeline layer of ``shared``.

How a stage runs on Kafka: the runner, a service's main, consumer groups, and
the AsyncAPI document and broker ACLs derived from the contract. Independent of the domain
layer.
"""
