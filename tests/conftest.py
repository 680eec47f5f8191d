import sys
from pathlib import Path

# test helpers (hub_standin) live beside the tests
sys.path.insert(0, str(Path(__file__).parent))
