"""Learned rewards: a binary success classifier on camera images, its dataset, training and runtime runner."""
