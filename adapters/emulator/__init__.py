"""Protocol-faithful emulators of Workers AI, Deepgram and OpenAI-compatible APIs (see ``app.py``)."""
