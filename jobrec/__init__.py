__version__ = "0.1.0"

import os as _os
# jobrec never downloads: every model and tokenizer it loads is local. Set before anything imports transformers or
# huggingface_hub (they read these once); a user who has set them keeps their values.
for _k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"): _os.environ.setdefault(_k, "1")
