"""Camera calibration for robot_rl: intrinsics, hand-eye (camera to robot), camera/robot clock offset.

One idea per module: ``board`` (targets and their detection), ``intrinsics``, ``camera_info``
(ROS CameraInfo YAML), ``hand_eye`` and ``hand_eye_refine``, ``time_offset``, ``capture``
(guided capture against small arm/camera protocols), ``synthetic`` (rendered board photos
with a known camera), ``poses`` (4x4 conventions), ``cli`` (``main(argv)``).
"""
