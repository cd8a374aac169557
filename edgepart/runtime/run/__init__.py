"""`edgepart run`: each tier as its own process, adjacent tiers joined over links shaped to the
deployment's bandwidth and round trip, requests streamed through and measured against the plan."""
