#!/bin/bash
set -e
cd /app
python3 -m compileall -q calc
python3 -m calc.selftest
