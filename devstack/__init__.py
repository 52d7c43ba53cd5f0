"""Development tooling: the whole stack on one machine (``make up``), its local broker,
cluster and PostgreSQL launchers. Not part of the runtime image: nothing in ``shared/`` or
``services/`` imports it."""
