"""Compression: per-layer precisions (fp16, int8 through QDQ), cut-tensor codecs, and the accuracy
each costs, measured on calibration data."""
