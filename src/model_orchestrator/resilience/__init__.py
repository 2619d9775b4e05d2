"""resilience layer."""
