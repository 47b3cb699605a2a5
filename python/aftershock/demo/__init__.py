"""The demo: a simulated shop driven through the real OpenTelemetry SDK into aftershock.

``shop`` is the simulator (services, traffic, deploys on a virtual event-time clock);
``aftershock demo`` (``aftershock.commands.demo``) runs it against an in-process receiver
and prints the verdicts.
"""

from __future__ import annotations

from aftershock.demo.shop import Deploy, Fault, Incident, RunStats, Scenario, ServiceFleet, Shop

__all__ = ["Deploy", "Fault", "Incident", "RunStats", "Scenario", "ServiceFleet", "Shop"]
