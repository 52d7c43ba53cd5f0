"""Request and response bodies of the HTTP API, camelCase on the wire as in the seed: one
module per router (``common`` holds what they share)."""
