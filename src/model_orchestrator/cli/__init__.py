"""L4: the ``orchestrator`` command. Talks to the façade only; imports it lazily so ``--help`` stays fast."""
