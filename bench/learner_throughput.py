"""Learner updates/s: ours vs stable-baselines3 SAC at the same sizes, in one run; plus RLPD's 10 critics.

Same sizes: Pendulum-v1 (3 obs, 1 action), 2 critics, UTD 1 (one actor update per critic update),
batch 256, [256, 256] MLPs without LayerNorm (SB3 has none), one torch thread each. Sampling
from the replay buffer is included on both sides. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from robot_rl.config import LearnerConfig  # noqa: E402
from robot_rl.replay import ReplayBuffer, sample_mixed  # noqa: E402
from robot_rl.sac import SACAgent, batch_to_torch  # noqa: E402
from robot_rl.spaces import ObsSpec  # noqa: E402

UPDATES = 60  # per round
ROUNDS = 5  # ours and SB3 alternate round by round, so load from other processes hits both alike
FILL = 2000


def median_rate(steppers: dict) -> dict:
    """Alternate the update functions in rounds; median updates/s per name."""
    rates = {name: [] for name in steppers}
    for fn in steppers.values():
        for _ in range(10):
            fn()
    for _ in range(ROUNDS):
        for name, fn in steppers.items():
            start = time.perf_counter()
            for _ in range(UPDATES):
                fn()
            rates[name].append(UPDATES / (time.perf_counter() - start))
    return {name: float(np.median(r)) for name, r in rates.items()}


def ours(config: LearnerConfig, obs_dim: int = 3, action_dim: int = 1):
    agent = SACAgent(ObsSpec(obs_dim), action_dim, config, seed=0)
    buffer = ReplayBuffer(ObsSpec(obs_dim), action_dim, capacity=10_000)
    rng = np.random.default_rng(0)
    for t in range(FILL):
        buffer.add({"state": rng.normal(size=obs_dim).astype(np.float32)}, rng.uniform(-1, 1, action_dim), rng.normal(),
                   False, t % 200 == 199, {"state": rng.normal(size=obs_dim).astype(np.float32)}, episode_start=(t % 200 == 0))

    def step():
        agent.update(batch_to_torch(sample_mixed(buffer, None, config.batch_size, 0.0)))

    return step


def sb3():
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", "Pendulum-v1", batch_size=256, learning_starts=FILL, buffer_size=10_000,
                policy_kwargs={"net_arch": [256, 256]}, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=FILL)  # fills the buffer; no gradient steps before learning_starts
    return lambda: model.train(gradient_steps=1, batch_size=256)


def main() -> None:
    torch.set_num_threads(1)
    same_size = LearnerConfig(num_critics=2, critic_subsample=2, layer_norm=False, utd=1, batch_size=256, hidden_dims=[256, 256])
    rlpd10 = LearnerConfig()  # defaults: 10 critics, LayerNorm, batch 256
    rates = median_rate({
        "ours": ours(same_size), "sb3": sb3(), "rlpd10": ours(rlpd10),
        "pick_cube": ours(LearnerConfig(num_critics=2), obs_dim=13, action_dim=4),
    })
    result = {
        "ours_updates_per_s": round(rates["ours"], 1),
        "sb3_updates_per_s": round(rates["sb3"], 1),
        "ratio": round(rates["ours"] / rates["sb3"], 2),
        "rlpd10_updates_per_s": round(rates["rlpd10"], 1),
        "pick_cube_config_updates_per_s": round(rates["pick_cube"], 1),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
