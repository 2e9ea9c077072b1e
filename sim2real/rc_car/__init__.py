"""1/10 RC car racing (FastRLAP): dynamic bicycle model, tracks, egocentric camera, racing task.

``RCCarRaceEnv`` is the gymnasium task (one car, 10 Hz, checkpoint reward, automatic recovery);
``VecRCCar`` runs N cars (physics + camera) for benchmarks; ``RCCarExpert`` is its pure-pursuit
expert (``mode="slow"``: the demonstration lap, ``mode="fast"``: the lap-time reference).
"""

from sim2real.rc_car.checkpoints import extract_checkpoints, scripted_slow_lap
from sim2real.rc_car.dynamics import CarFleet
from sim2real.rc_car.env import RCCarRaceEnv, VecRCCar
from sim2real.rc_car.expert import PurePursuit, RCCarExpert
from sim2real.rc_car.params import CameraParams, CarParams
from sim2real.rc_car.recovery import CrashStuckDetector, RecoveryConfig, recovery_actions
from sim2real.rc_car.track import TRACKS, Track, get_track

__all__ = ["TRACKS", "CameraParams", "CarFleet", "CarParams", "CrashStuckDetector", "PurePursuit", "RCCarExpert",
           "RCCarRaceEnv", "RecoveryConfig", "Track", "VecRCCar", "extract_checkpoints", "get_track", "recovery_actions",
           "scripted_slow_lap"]
