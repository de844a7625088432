"""Hydra launcher plugin of the recorder: ``hydra/launcher=process`` (see process_launcher)."""
