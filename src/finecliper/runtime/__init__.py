"""The runtime layer of the model library: what every program needs to run a model.

``checkpoint`` (save and load trained weights with their config), ``inputs`` (a collated batch to
the model's inputs, on the device) and ``device`` (device choice and autocast). ``train``,
``serve`` and ``bench`` all build on these; nothing here imports a program.
"""
