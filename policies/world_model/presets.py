"""Model and planner sizes: ``cpu`` (<= 1M learned parameters, plans at >= 20 Hz on 2 cores) and ``gpu``.

TD-MPC2's default planner (512 samples, 64 elites, 6 iterations) at its default size takes about
1.3 s per action on 2 CPU cores (DESIGN.md); the cpu preset trades samples and iterations for rate.
"""

from __future__ import annotations

from policies.world_model.config import ModelSettings, PlannerSettings

PRESETS: dict[str, tuple[ModelSettings, PlannerSettings]] = {
    "cpu": (
        # 0.30M learned parameters: with 256-wide MLPs (0.86M) an update costs 135 ms and an MPPI iteration 9 ms
        # of one core (measured), too slow to learn pick-cube and plan at 20 Hz on a shared 2-core machine
        ModelSettings(latent_dim=64, mlp_dim=128, enc_dim=128),
        # 128 samples and 2-3 iterations plan at about 20 Hz on this machine (DESIGN.md); the 40 ms budget
        # keeps the p99 decision under 50 ms with headroom for scheduling jitter on a shared machine
        PlannerSettings(num_samples=128, num_pi_trajs=16, num_elites=16, iterations=3, time_budget_ms=40.0),
    ),
    "gpu": (
        ModelSettings(),  # TD-MPC2's 5M-parameter defaults
        PlannerSettings(time_budget_ms=80.0),  # TD-MPC2's planner; 80 ms fits a 10 Hz control loop
    ),
}


def preset(name: str) -> tuple[ModelSettings, PlannerSettings]:
    if name not in PRESETS:
        raise ValueError(f"unknown world-model preset '{name}'; use one of {sorted(PRESETS)}")
    return PRESETS[name]
