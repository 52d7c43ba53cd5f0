"""The domain layer of ``shared``.

The print-on-demand rules: the catalog, pricing, print sizes, the side-effect
ledger and the vendors' rate budgets. Independent of the pipeline layer.
"""
