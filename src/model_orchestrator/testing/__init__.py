"""Test helpers shipped with the package: a real local fake upstream, an in-memory transport, scripted
models and a fake clock.

Owns nothing used in production paths. It never imports ``model_orchestrator.providers``.
"""

from model_orchestrator.testing.fake_clock import FakeClock
from model_orchestrator.testing.fake_upstream import FakeUpstream, Fault, RecordedRequest, Reply, WireFormat
from model_orchestrator.testing.mock_transport import MockRequest, MockResponse, MockTransport, wire_handler
from model_orchestrator.testing.scripted import FunctionModel, ScriptedModel

__all__ = [
    "FakeClock",
    "FakeUpstream",
    "Fault",
    "FunctionModel",
    "MockRequest",
    "MockResponse",
    "MockTransport",
    "RecordedRequest",
    "Reply",
    "ScriptedModel",
    "WireFormat",
    "wire_handler",
]
