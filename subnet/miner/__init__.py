"""The miner: train a model (train.py), check it would win (benchmark.py), publish it (upload.py); CLI in cli.py."""
