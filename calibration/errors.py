"""The one error type a person can cause in calibration (bad board size, too few views, bad file)."""


class CalibrationError(ValueError):
    """Calibration cannot go on; the message ends with what to do about it."""
