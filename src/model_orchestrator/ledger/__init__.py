"""L1 ledger: the durable record of every attempt and request, budgets and quotas, and cost reports.

It only listens: ``LedgerRecorder`` is an ``EventSink`` the façade subscribes, and ``Ledger`` implements
``core.budget.BudgetKeeper`` for the ``BudgetGuardModel`` the composition root puts in front of each
deployment. One async SQL layer (SQLAlchemy Core) serves SQLite (the default, a file in the user data dir)
and PostgreSQL. Importing this package loads no SQL library: the modules that need one import it
themselves and are imported on first use.
"""
