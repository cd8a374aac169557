"""Per-tier compilation: targets, the TVM build process, and (later) cutting and the manifest."""
