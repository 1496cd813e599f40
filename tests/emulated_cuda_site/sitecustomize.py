"""Put on PYTHONPATH by tests that run a whole validator on an emulated CUDA host: every Python process
they start (the daemon, its spawned scoring workers) emulates SUBNET_TEST_EMULATE_CUDA devices."""

import os

if os.environ.get("SUBNET_TEST_EMULATE_CUDA"):
    from tests.cuda_emulation import install_from_env

    install_from_env()
