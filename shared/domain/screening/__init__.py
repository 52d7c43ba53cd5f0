"""Screening every design before anything of it reaches Printify (issue 29, decision §49):
protected terms (a deny list, Claude's risk review, the text rendered into the art),
near-duplicate designs (perceptual hashes) and unsafe images (a local classifier).

``checks`` holds what each check answers and the small interfaces the generator's screener runs
them through; each check lives in its own module (``terms``, ``phash``) or adapter
(``shared.adapters.ocr``, ``shared.adapters.unsafe``, the Claude client, the
``design_hashes`` store)."""
