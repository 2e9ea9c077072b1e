"""``robot-rl`` subcommands: each module has ``register(subparsers)``; cli.py lists the modules."""
