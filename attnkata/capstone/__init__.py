"""The capstone: a tiny transformer served with the learner's own katas.

- :mod:`.corpus` writes the training text (generated, CC0);
- :mod:`.model` the model, its byte tokenizer and the ``safetensors`` loader;
- :mod:`.train` the deterministic training script that made ``data/tiny.safetensors``;
- :mod:`.wiring` which kata runs each part (the learner's in a worker, or the reference);
- :mod:`.engine` generation with speculative decoding, checked at every step;
- :mod:`.serve` and :mod:`.report`: the ``attnkata serve`` command.

See docs/CAPSTONE.md.
"""
