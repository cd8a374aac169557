"""edgepart: split a neural network across device, edge and cloud, and build what each tier runs."""

__version__ = "0.1.0"
