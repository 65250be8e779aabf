"""pytest setup for the Python package's tests: import tile from this source tree (python/)
and find build/libtile.so, so `python3 -m pytest tests/python` works with or without
PYTHONPATH=python. REPO and STDLIB are the paths the tests read sources from."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))
STDLIB = os.path.join(REPO, "stdlib", "core")
