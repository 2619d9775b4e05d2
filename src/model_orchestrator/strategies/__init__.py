"""L2 strategies: ways of combining models that are themselves models (fallback, cascade, ensemble, ...).

Every strategy implements ``ChatModel``, holds ``Member``s (a model plus its static profile) and returns
a ``Completion`` whose ``explanation`` says what was tried and why. Decisions (fallback predicates,
scorers, aggregators) are pure objects tested without models.
"""
