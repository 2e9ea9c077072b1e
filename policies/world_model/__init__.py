"""TD-MPC2-style world-model policy: latent model, two-hot values, time-budgeted MPPI planner, policy prior."""
