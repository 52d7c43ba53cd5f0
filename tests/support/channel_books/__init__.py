"""Per direct channel: reading its simulator's ``GET /_sim/books`` for the chaos test (live
listings per Printify product, and the simulator's own duplicate detection)."""
