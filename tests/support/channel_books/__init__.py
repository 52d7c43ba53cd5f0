"""Each direct channel's simulator books, read for the chaos test: one module per channel."""
