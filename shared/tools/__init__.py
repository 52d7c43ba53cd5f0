"""The tools layer of ``shared``.

Operator entry points: the ``pod`` CLI, ``init`` and the doctor. Nothing in
``shared`` imports them.
"""
