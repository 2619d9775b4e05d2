"""Telemetry: event sinks that turn the call path's events into traces, metrics and structured logs.

Everything here only LISTENS (``core.events``); nothing in the call path imports it. OpenTelemetry and
prometheus_client are optional extras (``tracing``, ``metrics``) imported only when configured or asked for.
"""
