"""Vendor contracts extracted mechanically from what each vendor publishes (one package per
vendor: the script that extracts, and the extract it wrote with its source recorded)."""
