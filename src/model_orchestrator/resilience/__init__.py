"""L1 resilience: retries, circuit breakers, cooldowns, rate limits, deadlines and health, per deployment.

Each policy is a small pure object (decisions testable without a model, clock or network) plus a
``ChatModel`` wrapper that applies it. State lives behind ``StateStore`` so a shared store (Redis) can
replace the in-memory one without touching the algorithms.
"""
