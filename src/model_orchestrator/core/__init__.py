"""L0: the value types every other layer speaks (messages, requests, completions, errors, events, clock).

Nothing here does I/O or imports a provider, a resilience policy or a front door.
"""
