"""Installs the network guard in every Python process a test starts (this directory is on
their PYTHONPATH; see network_guard.py)."""

import network_guard

network_guard.install()
