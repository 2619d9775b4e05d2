"""``python -m model_orchestrator`` runs the ``orchestrator`` command."""

from model_orchestrator.cli.main import main

main()
