"""System identification: fit simulator parameters to logged trajectories by least squares.

`fitter` is generic (parameters, short-horizon shooting windows, scipy least_squares in log
space); `quadrotor` fits the Crazyflie model's thrust coefficient, motor lag and mass;
`quadrotor_flight` records excitation flights to fit on; `logs` reads and writes the logs
(npz), `ros2_bag` reads and writes them as ROS 2 bags (needs `rosbags`).
"""

from sim2real.sysid.fitter import FitResult, Parameter, fit_parameters, shooting_windows
from sim2real.sysid.logs import TrajectoryLog

__all__ = ["FitResult", "Parameter", "TrajectoryLog", "fit_parameters", "shooting_windows"]
