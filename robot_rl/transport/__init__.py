"""Actor/learner link over ZeroMQ: msgpack headers + raw array buffers, never pickle."""
