"""Routing: which model a request needs. Complexity scoring, cost/capability-aware selection, a learned
router and RouteLLM-style evaluation (see README.md in this folder)."""
