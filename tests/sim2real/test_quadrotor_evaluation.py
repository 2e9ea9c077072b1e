"""Hover metrics: the success rule, position errors, the 500 Hz firmware harness, figure-eight RMSE."""

import numpy as np

from sim2real.quadrotor import CRAZYFLIE, HoverTaskConfig
from sim2real.quadrotor.evaluation import evaluate_hover, evaluate_hover_firmware, figure_eight_rmse

HOVER = CRAZYFLIE.hover_action()
# starts exactly on the target, level, at rest, rotors at hover speed: the hover command keeps it there
AT_REST = HoverTaskConfig(init_guidance=1.0, init_linear_velocity_m_s=0.0, init_angular_velocity_rad_s=0.0,
                          init_rpm_action=(HOVER, HOVER), episode_steps=200).without_noise()


def hover_command(obs):
    return np.full((len(obs), 4), HOVER)


class ConstantFirmware:
    def __init__(self, action):
        self.action, self.ticks = action, 0

    def reset(self, initial_action):
        self.count = len(initial_action)

    def control(self, state):
        self.ticks += 1
        return np.full((self.count, 4), self.action, np.float32)


def test_holding_the_hover_command_at_the_target_succeeds():
    result = evaluate_hover(hover_command, AT_REST, episodes=8, seed=0)
    assert result["success_rate"] == 1.0 and result["terminated_rate"] == 0.0
    assert result["mean_position_error_m_at_100"] < 0.01 and result["mean_position_error_m_at_200"] < 0.01


def test_falling_vehicles_fail_and_count_at_the_termination_distance():
    result = evaluate_hover(lambda obs: np.full((len(obs), 4), -1.0), AT_REST, episodes=8, seed=0)
    assert result["success_rate"] == 0.0 and result["terminated_rate"] == 1.0
    assert result["mean_position_error_m_at_200"] == AT_REST.termination_position_m
    assert result["final_position_error_m"] is None


def test_firmware_harness_ticks_at_500_hz():
    firmware = ConstantFirmware(HOVER)
    result = evaluate_hover_firmware(firmware, AT_REST, episodes=4, seed=0)
    assert firmware.ticks == 5 * AT_REST.episode_steps  # 2 ms simulator steps over the same 2 s
    assert result["success_rate"] == 1.0


def test_figure_eight_rmse_of_a_vehicle_that_stays_put():
    # hovering at the start point: the error is the distance to a moving figure eight (2 m x 1 m)
    result = figure_eight_rmse(hover_command, HoverTaskConfig(init_rpm_action=(HOVER, HOVER)), laps=1.0)
    assert result["figure_eight_completed"]
    assert 0.5 < result["figure_eight_rmse_m"] < 1.5
