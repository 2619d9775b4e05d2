"""Router latency: how long the learned router takes to load and to score one prompt, offline, on the CPU.

1. Load: reading and decoding the shipped file (median of N fresh loads; the first load of a process also
   pays for importing the modules, reported separately).
2. Per decision: strong_score() on prompts of different lengths (a one-liner, a multiple-choice question,
   a word problem, a 4,000-character document), median and p99 over many calls, in CPU time; the generic
   router, the complexity scorer and a whole ``RoutePolicy.choose`` over four tiers with a cost target
   (score + tier plan + selection) for comparison.
The target is at most 1 ms of CPU per decision.

Usage: python benchmarks/router.py [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

PROMPTS = {
    "one-liner": "What is the capital of France?",
    "multiple choice": (
        "Which of the following is a noble gas?\nA. Oxygen\nB. Neon\nC. Iron\nD. Carbon\nAnswer:"
    ),
    "word problem": (
        "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
        "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
        "per fresh duck egg. How much in dollars does she make every day at the farmers' market?"
    ),
    "4,000-char document": ("The quarterly report shows revenue growth across all regions. " * 65)
    + "\nSummarise the main risks.",
}


def timed(function: Callable[[], object], calls: int) -> tuple[float, float]:
    """(median, p99) CPU milliseconds of this process."""
    samples = []
    for _ in range(calls):
        started = time.process_time()
        function()
        samples.append((time.process_time() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls

    started = time.perf_counter()
    from model_orchestrator.routing.learned import LearnedRouter

    router = LearnedRouter.load()
    first = (time.perf_counter() - started) * 1000
    load, _ = timed(LearnedRouter.load, 50)
    print(f"learned router: first load {first:.1f} ms (imports included), then {load:.2f} ms per load")
    print(f"  file: {router.source}, trained on {router.training.get('examples')} prompts")

    from model_orchestrator.core.pricing import Price
    from model_orchestrator.core.profile import ModelProfile
    from model_orchestrator.core.request import ChatRequest
    from model_orchestrator.routing.complexity import ComplexityScorer
    from model_orchestrator.routing.policy import RoutePolicy
    from model_orchestrator.routing.tiers import TierPlan

    complexity = ComplexityScorer()
    generic = router.generic()
    plan = TierPlan(router.score_quantiles, target_cost_per_1k=0.002)
    policy = RoutePolicy(router, threshold=router.threshold_for_share(0.3), plan=plan)
    models = [ModelProfile(f"m{t}", Price(t + 0.1, t + 0.5), 128_000, None, t) for t in range(4)]
    header = f"{'learned ms':>18} {'generic ms':>18} {'complexity ms':>18} {'whole policy ms':>18}"
    print(f"\n{'prompt':<22} {'chars':>6} {header}")
    worst = 0.0
    for label, prompt in PROMPTS.items():
        request = ChatRequest.from_prompt(prompt)
        rows = [
            timed(lambda p=prompt: router.strong_score(p), calls),
            timed(lambda p=prompt: generic.strong_score(p), calls),
            timed(lambda p=prompt: complexity.score(p), calls),
            timed(lambda r=request: policy.choose(r, models), calls // 4),
        ]
        worst = max(worst, rows[0][0], rows[3][0])
        cells = " ".join(f"{median:>7.3f} (p99 {p99:.3f})" for median, p99 in rows)
        print(f"{label:<22} {len(prompt):>6} {cells}")
    verdict = "within" if worst <= 1.0 else "OVER"
    print(f"\nslowest median decision: {worst:.3f} ms CPU ({verdict} the 1 ms target)")


if __name__ == "__main__":
    main()
