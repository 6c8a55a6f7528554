"`python -m jobrec`: the `jobrec` command (also under `torchrun -m jobrec` and `accelerate launch -m jobrec`); the code is jobrec.launch (nbs/13_launch.ipynb)."
import sys
from jobrec.launch import main

if __name__ == "__main__": sys.exit(main())
