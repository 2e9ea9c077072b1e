"""Quadrotor system identification: recover perturbed parameters from 20 s of logged flight.

Prints one JSON line: true, initial and fitted thrust coefficient, motor time constant and mass,
their relative errors, and the 1 s prediction RMSE before and after the fit.
Usage: python bench/sysid.py [--seed N] [--duration-s 20] [--noise]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from sim2real.quadrotor.params import CRAZYFLIE
from sim2real.sysid.quadrotor import FITTED, fit_quadrotor
from sim2real.sysid.quadrotor_flight import record_flight

# motion capture ~1 mm / 1e-3, estimator velocity ~1 cm/s, gyro ~0.01 rad/s (4x a BMI088 spec) per 10 ms sample
MEASUREMENT_NOISE = np.array([1e-3] * 3 + [1e-3] * 4 + [1e-2] * 3 + [1e-2] * 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--noise", action="store_true", help="add measurement noise to the logged states")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    real = replace(CRAZYFLIE, mass_kg=0.029, motor_time_constant_s=0.12)
    log = record_flight(real, args.duration_s, seed=args.seed, measurement_noise=MEASUREMENT_NOISE if args.noise else None)
    factors = rng.uniform(0.10, 0.30, 3) * rng.choice([-1.0, 1.0], 3)
    start = replace(real, **{n: getattr(real, n) * (1 + f) for n, f in zip(FITTED, factors)})
    began = time.perf_counter()
    out = fit_quadrotor(log, start)
    fit_s = time.perf_counter() - began
    fitted = out["params"]
    print(json.dumps({
        "bench": "sysid_quadrotor",
        "log_s": log.duration_s,
        "measurement_noise": bool(args.noise),
        "true": {n: getattr(real, n) for n in FITTED},
        "initial": {n: getattr(start, n) for n in FITTED},
        "fitted": {n: getattr(fitted, n) for n in FITTED},
        "initial_error_pct": {n: round(100 * (getattr(start, n) / getattr(real, n) - 1), 2) for n in FITTED},
        "fitted_error_pct": {n: round(100 * (getattr(fitted, n) / getattr(real, n) - 1), 3) for n in FITTED},
        "rmse_1s_before": {k: round(v, 5) for k, v in out["rmse_before"].items()},
        "rmse_1s_after": {k: round(v, 5) for k, v in out["rmse_after"].items()},
        "evaluations": out["fit"].evaluations,
        "fit_s": round(fit_s, 2),
    }))


if __name__ == "__main__":
    main()
