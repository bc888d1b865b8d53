#!/bin/bash
# Runs the checks in test_outputs.py and writes 1 (all pass) or 0 to /logs/verifier/reward.txt.
mkdir -p /logs/verifier
if python3 /tests/test_outputs.py; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
