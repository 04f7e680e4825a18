"""Model loading for scorers: offline factories that turn a name or a path into a ready model.

Nothing here downloads. Weights come from local files, the Hugging Face / open_clip caches,
or a ``VIDQA_MODELS_DIR`` folder; when they are missing the error says which file was looked
for and how to provide it. Submodules import their heavy dependencies (torch, open_clip) on
import, so import the one you need: ``vidqa.models.clip``, ``vidqa.models.aesthetic``.
"""

MODELS_DIR_ENV = "VIDQA_MODELS_DIR"
