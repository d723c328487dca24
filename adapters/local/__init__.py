"""Embedded offline providers: local STT (VAD + partials + Smart Turn + Whisper), TTS, reply engine.

Nothing here downloads anything: every model is loaded from an installed package (extras ``local``
and ``voice-gpl``), with optional path overrides from settings. Import the submodules directly;
this package imports nothing heavy so that ``vani.adapters.factory`` can import lazily.
"""
